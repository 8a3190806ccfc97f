import type { Command } from 'commander';
import { cliIo } from '../io.js';
import { labDown, labEpoch, labStatus, labUp, parseClosedPolicy, type LabClosedPolicy, type LabState } from '../../lab/index.js';
import { parseInteger } from '../options.js';

function printState(state: LabState | null, json: boolean): void {
  if (json) {
    cliIo().stdout.write(`${JSON.stringify(state)}\n`);
    return;
  }
  if (!state) {
    cliIo().stdout.write('no lab is up\n');
    return;
  }
  cliIo().stdout.write(
    `lab: profile ${state.profile}, seed ${state.seed}, epoch ${state.epoch}/${state.epochs - 1}, ${state.hosts.length} hosts, closed ports: ${state.closed ?? 'reject'}\n`,
  );
  for (const h of state.hosts) {
    const ports = h.services.map((s) => `${s.port}/${s.kind}`).join(' ') || '(nothing open)';
    cliIo().stdout.write(`${h.ip.padEnd(14)} ${h.ns.padEnd(10)} [${h.tags.join(',')}] ${ports}\n`);
  }
  cliIo().stdout.write(
    `masscan: --adapter ${state.masscan.adapter} --adapter-ip ${state.masscan.adapterIp} --router-ip ${state.masscan.routerIp}\n`,
  );
}

const log = (line: string) => cliIo().stderr.write(`${line}\n`);

/** `portbandit lab up|epoch|down|status`: test hosts in network namespaces (198.18.0.0/15 only). */
export function registerLab(program: Command): void {
  const lab = program.command('lab').description('Test hosts in Linux network namespaces, addressed in 198.18.0.0/15 only (needs root).');
  lab
    .command('up')
    .description("Create lab hosts serving a synthetic profile's services (tears down any previous lab).")
    .requiredOption('--hosts <n>', 'number of hosts', parseInteger(1, 4000))
    .option('--profile <name>', 'synthetic profile that decides what each host serves', 'enterprise')
    .option('--seed <seed>', 'seed for the profile', '1')
    .option('--epochs <n>', 'epochs `lab epoch` can step through', parseInteger(1, 1000), 12)
    .option('--max-ports <n>', 'serve at most this many ports per host', parseInteger(1, 1000), 64)
    .option(
      '--closed <policy>',
      'TCP to ports a host does not serve: reject (RST, like an unfiltered host) or drop (silence, like a host firewall; needs nftables)',
      (v: string) => parseClosedPolicy(v),
      'reject',
    )
    .option('--json', 'print the lab state as JSON on stdout')
    .action(
      async (opts: {
        hosts: number;
        profile: string;
        seed: string;
        epochs: number;
        maxPorts: number;
        closed: LabClosedPolicy;
        json?: boolean;
      }) => {
        const state = await labUp({
          hosts: opts.hosts,
          profile: opts.profile,
          seed: opts.seed,
          epochs: opts.epochs,
          maxPortsPerHost: opts.maxPorts,
          closed: opts.closed,
          log,
        });
        printState(state, Boolean(opts.json));
      },
    );
  lab
    .command('epoch')
    .description("Advance the lab to the profile's next epoch (services appear and disappear).")
    .option('--json', 'print the lab state as JSON on stdout')
    .action(async (opts: { json?: boolean }) => printState(await labEpoch({ log }), Boolean(opts.json)));
  lab
    .command('down')
    .description("Remove every namespace, link, route and process the labs made (also a test run's second lab, and after a crash).")
    .action(async () => {
      const { namespaces } = await labDown({ log });
      log(`lab: down (${namespaces} namespaces removed)`);
    });
  lab
    .command('status')
    .description('Show the lab hosts and their services.')
    .option('--json', 'print the lab state as JSON on stdout')
    .action((opts: { json?: boolean }) => printState(labStatus(), Boolean(opts.json)));
}
