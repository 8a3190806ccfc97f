import { profiles, roles, type ProfileName, type ProfileSpec, type RoleName } from './profiles.js';

/** One documented parameter of a profile. */
export interface ProfileParameter {
  readonly parameter: string;
  readonly value: string;
  readonly meaning: string;
}

const pct = (x: number): string => `${+(x * 100).toFixed(2)}%`;

/** The parameters of a profile, as rows for docs/profiles.md and `scope profiles`. */
export function describeProfile(name: ProfileName): ProfileParameter[] {
  const p = profiles[name];
  const rows: ProfileParameter[] = [
    {
      parameter: 'roles',
      value: Object.entries(p.roles)
        .map(([r, w]) => `${r} ${pct(w)}`)
        .join(', '),
      meaning: 'role (scope tag) of each /24 subnet, drawn with these weights',
    },
    { parameter: 'bundleScale', value: String(p.bundleScale), meaning: 'multiplies every role bundle probability' },
    { parameter: 'deadShare', value: pct(p.deadShare), meaning: 'hosts with nothing open, every epoch' },
    {
      parameter: 'pseudoShare',
      value: pct(p.pseudoShare),
      meaning: `pseudo-service hosts (SYN proxies), one per ${Math.round(1 / p.pseudoShare)} hosts`,
    },
    {
      parameter: 'pseudoPorts',
      value: `${p.pseudoPorts[0]}-${p.pseudoPorts[1]}`,
      meaning: 'open ports on a pseudo-service host (uniform), a contiguous block or a scatter',
    },
  ];
  const t = p.tail;
  if (t) {
    rows.push(
      { parameter: 'tail.subnetShare', value: pct(t.subnetShare), meaning: '/24 subnets with their own tail ports' },
      { parameter: 'tail.ports', value: `${t.ports[0]}-${t.ports[1]}`, meaning: 'tail ports per such subnet' },
      {
        parameter: 'tail.hostShare',
        value: `${pct(t.hostShare[0])}-${pct(t.hostShare[1])}`,
        meaning: "share of the subnet's live hosts running each tail port",
      },
      {
        parameter: 'tail.pool',
        value: t.pool,
        meaning:
          t.pool === 'org'
            ? 'first an odd high port (20000-60000, outside nmap top 1000), then alternate app ports (8443, 31337, ...) or odd high ports'
            : 'ports nmap ranks 1000th or lower, or has no figure for',
      },
      { parameter: 'tail.altSshSubnetShare', value: pct(t.altSshSubnetShare), meaning: 'subnets running SSH on 2222 instead of 22' },
      { parameter: 'tail.altSshHostShare', value: pct(t.altSshHostShare), meaning: 'in those, SSH hosts whose SSH is on 2222' },
    );
  } else rows.push({ parameter: 'tail', value: 'none', meaning: 'no organisation long tail' });
  rows.push(
    { parameter: 'churn.down', value: pct(p.churn.down), meaning: 'per epoch, chance that a service disappears' },
    { parameter: 'churn.up', value: pct(p.churn.up), meaning: 'per epoch, chance that a live host gains a service' },
    {
      parameter: 'rollout',
      value: p.rollout ? `${pct(p.rollout.hostShare)} of a /24` : 'none',
      meaning: p.rollout
        ? (p.rollout as NonNullable<ProfileSpec['rollout']>).source === 'elsewhere'
          ? 'a port another /24 already runs (its own tail port) opens on the live hosts of one /24 at epoch floor(E/2)'
          : 'a new odd high port (nmap has no figure for it) opens on the live hosts of one /24 at epoch floor(E/2)'
        : 'no rollout',
    },
  );
  return rows;
}

function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const esc = (s: string): string => s.replaceAll('|', '\\|');
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join(
    '\n',
  );
}

/** Role bundles and extra-service counts as rows. */
function roleRows(role: RoleName): string[][] {
  const spec = roles[role];
  const rows = spec.bundles.map((b) => [b.ports.join(', '), pct(b.p), pct(b.keep)]);
  const total = spec.extraCounts.reduce((a, b) => a + b, 0);
  const mean = spec.extraCounts.reduce((a, w, k) => a + k * w, 0) / total;
  rows.push([
    "extra services from nmap's frequencies",
    `mean ${mean.toFixed(2)}`,
    `P(0) = ${pct(spec.extraCounts[0]! / total)}, P(1) = ${pct(spec.extraCounts[1]! / total)}`,
  ]);
  return rows;
}

/** The profile and role tables of docs/profiles.md (the generated part). */
export function renderProfilesMarkdown(): string {
  const out: string[] = [];
  for (const name of Object.keys(profiles) as ProfileName[]) {
    out.push(`### \`${name}\``, '', profiles[name].description, '');
    out.push(
      markdownTable(
        ['parameter', 'value', 'meaning'],
        describeProfile(name).map((r) => [r.parameter, r.value, r.meaning]),
      ),
      '',
    );
  }
  out.push('### Roles', '');
  for (const role of Object.keys(roles) as RoleName[]) {
    out.push(`#### \`${role}\``, '');
    out.push(markdownTable(['bundle (ports open together)', 'P(host runs it)', 'P(each member open)'], roleRows(role)), '');
  }
  return out.join('\n');
}

/** Profiles as plain text for the terminal. */
export function renderProfilesText(): string {
  const out: string[] = [];
  for (const name of Object.keys(profiles) as ProfileName[]) {
    out.push(`${name}: ${profiles[name].description}`);
    const rows = describeProfile(name);
    const w = Math.max(...rows.map((r) => r.parameter.length));
    const v = Math.max(...rows.map((r) => r.value.length));
    for (const r of rows) out.push(`  ${r.parameter.padEnd(w)}  ${r.value.padEnd(v)}  ${r.meaning}`);
    out.push('');
  }
  return out.join('\n');
}
