/* global module */
/**
 * The layers of portbandit (README "Development"), enforced by `npm run lint`.
 *
 *   cli                                    src/cli
 *   coordinator | agent | lab              src/coordinator, agent, src/lab
 *   experiments, notebooks                 experiments, notebooks (notebooks may use experiments)
 *   simulator                              simulator
 *   strategies                             strategies
 *   foundation                             src/core, src/protocol, src/formats, src/catalog,
 *                                          src/recording, src/store, src/importers
 *
 * An area imports only areas below it (or beside it where the diagram says so), and another
 * area only through that area's index.ts.
 */
const foundation = '^src/(core|protocol|formats|catalog|recording|store|importers)/';
const area = '^(src/[^/]+|strategies|simulator|experiments|notebooks|agent)/';

module.exports = {
  forbidden: [
    {
      name: 'foundation-imports-only-foundation',
      severity: 'error',
      comment: 'The foundation (core, protocol, formats, catalog, recording, store, importers) imports nothing above it.',
      from: { path: foundation },
      to: { path: '^(src/(coordinator|cli|lab)|strategies|simulator|experiments|notebooks|agent)/' },
    },
    {
      name: 'strategies-above-foundation-only',
      severity: 'error',
      comment: 'Strategies build on the foundation only; the coordinator and the simulator both call them.',
      from: { path: '^strategies/' },
      to: { path: '^(src/(coordinator|cli|lab)|simulator|experiments|notebooks|agent)/' },
    },
    {
      name: 'simulator-below-experiments',
      severity: 'error',
      from: { path: '^simulator/' },
      to: { path: '^(src/(coordinator|cli|lab)|experiments|notebooks|agent)/' },
    },
    {
      name: 'experiments-below-notebooks',
      severity: 'error',
      comment: 'Notebooks render experiment results; experiments never import notebooks.',
      from: { path: '^experiments/' },
      to: { path: '^(src/(coordinator|cli|lab)|notebooks|agent)/' },
    },
    {
      name: 'notebooks-below-services',
      severity: 'error',
      from: { path: '^notebooks/' },
      to: { path: '^(src/(coordinator|cli|lab)|agent)/' },
    },
    {
      name: 'coordinator-agent-lab-side-by-side',
      severity: 'error',
      comment: 'The coordinator, the agent and the lab share only what lies below them (the wire protocol is in src/protocol).',
      from: { path: '^(src/coordinator|agent|src/lab)/' },
      to: { path: '^(src/(coordinator|lab|cli)|agent)/', pathNot: '^$1/' },
    },
    { name: 'only-cli-imports-cli', severity: 'error', from: { pathNot: '^(src/cli|test|bench)/' }, to: { path: '^src/cli/' } },
    {
      name: 'no-deep-imports-across-areas',
      severity: 'error',
      comment: 'Another area is used through its index.ts (its public surface), never its internals.',
      from: { path: area },
      to: { path: area, pathNot: ['^$1', '/index\\.ts$'] },
    },
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules|test|bench)/' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
