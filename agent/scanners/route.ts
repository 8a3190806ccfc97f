import { execa } from 'execa';
import { PortbanditError } from '../../src/core/index.js';

/** Where masscan sends its packets: the interface, its source address and the next hop. */
export interface MasscanRoute {
  readonly adapter: string;
  readonly adapterIp: string;
  readonly routerIp: string;
}

/** One `ip route get` answer. */
export interface RouteLookup {
  readonly dev: string;
  readonly src: string;
  readonly via: string | null;
}

/** Parse `ip route get ADDR` output ("ADDR via GW dev IF src SRC uid 0"). */
export function parseRouteGet(text: string, target: string): RouteLookup {
  const line = text.split('\n')[0] ?? '';
  const field = (name: string) => {
    const m = new RegExp(`\\b${name}\\s+(\\S+)`).exec(line);
    return m ? m[1]! : null;
  };
  const dev = field('dev');
  const src = field('src');
  if (/^(blackhole|unreachable|prohibit)\b/.test(line.trim()) || !dev || !src) {
    throw new PortbanditError(
      'PB_ERR_UNSAFE_TARGET',
      `no usable route to ${target} (${JSON.stringify(line.trim())}); masscan will not run`,
      { where: target },
    );
  }
  return { dev, src, via: field('via') };
}

/**
 * Resolve the adapter, source and router masscan must use to reach `targets`, from the kernel's
 * routing table. Refuses (PB_ERR_UNSAFE_TARGET) when a target has no route, when the targets
 * need different interfaces, or when the route is the default route's interface: masscan without
 * an explicit adapter would spray packets off the machine, and this agent only scans networks it
 * reaches over a dedicated interface.
 */
export async function resolveMasscanRoute(targets: readonly string[]): Promise<MasscanRoute> {
  if (targets.length === 0) throw new PortbanditError('PB_ERR_SCAN_OPTION', 'no targets to route', { where: 'targets' });
  const defaults = await execa('ip', ['route', 'show', 'default'], { reject: false });
  const defaultDevs = new Set([...String(defaults.stdout).matchAll(/\bdev\s+(\S+)/g)].map((m) => m[1]!));
  let route: MasscanRoute | null = null;
  const answers = await routeGetAll(targets);
  for (const target of targets) {
    let text = answers?.get(target);
    if (text === undefined) {
      const r = await execa('ip', ['route', 'get', target], { reject: false });
      if (r.exitCode !== 0)
        throw new PortbanditError('PB_ERR_UNSAFE_TARGET', `no route to ${target}: ${String(r.stderr).trim()}; masscan will not run`, {
          where: target,
        });
      text = String(r.stdout);
    }
    const hop = parseRouteGet(text, target);
    if (defaultDevs.has(hop.dev) || hop.dev === 'lo') {
      throw new PortbanditError(
        'PB_ERR_UNSAFE_TARGET',
        `${target} is reached over ${hop.dev}, the default route's interface (or loopback); masscan only runs over a dedicated, non-default interface — give --masscan-adapter/--masscan-router explicitly or use the connect preflight`,
        { where: target },
      );
    }
    const next: MasscanRoute = { adapter: hop.dev, adapterIp: hop.src, routerIp: hop.via ?? target };
    if (route && (route.adapter !== next.adapter || route.routerIp !== next.routerIp)) {
      throw new PortbanditError(
        'PB_ERR_UNSAFE_TARGET',
        `targets need different routes (${route.adapter} via ${route.routerIp}, ${next.adapter} via ${next.routerIp}); masscan runs one route at a time`,
        { where: target },
      );
    }
    route = next;
  }
  return route!;
}

/**
 * `ip route get` for every target in one `ip -batch` process (a run of 1,024 targets would
 * otherwise start 1,024 processes, each slow on a machine busy with nmap start-ups). Each answer
 * begins with its address at the start of a line, detail lines are indented. Null when the batch
 * did not answer for every target in order (an error for one of them): the caller then asks one
 * by one, which names the target and the error.
 */
async function routeGetAll(targets: readonly string[]): Promise<Map<string, string> | null> {
  if (targets.length < 2) return null;
  const r = await execa('ip', ['-batch', '-'], { reject: false, input: targets.map((t) => `route get ${t}\n`).join('') });
  return r.exitCode === 0 ? parseRouteBatch(String(r.stdout), targets) : null;
}

/**
 * Split `ip -batch` output of one `route get` per target into each target's answer line. Null
 * unless there is exactly one answer per target, in order, each starting with its address (an
 * answer such as `local ...`, `blackhole ...` or an error is left to the one-by-one lookup).
 */
export function parseRouteBatch(text: string, targets: readonly string[]): Map<string, string> | null {
  const answers = text.split('\n').filter((line) => line.length > 0 && !/^\s/.test(line));
  if (answers.length !== targets.length) return null;
  const out = new Map<string, string>();
  for (let i = 0; i < targets.length; i++) {
    if (answers[i]!.split(/\s/, 1)[0] !== targets[i]) return null;
    out.set(targets[i]!, answers[i]!);
  }
  return out;
}
