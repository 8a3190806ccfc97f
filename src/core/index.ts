/** The foundation's core: addresses, ports, errors, seeded randomness, hashes, logging. Imports nothing of portbandit's. */
export * from './address.js';
export * from './errors.js';
export * from './ports.js';
export * from './rng.js';
export * from './hash.js';
export * from './cumulative-sampler.js';
export * from './host-prefix.js';
export * from './image-info.js';
export * from './logger.js';
export * from './escape-html.js';
export * from './version.js';
export * from './errors-doc.js';
