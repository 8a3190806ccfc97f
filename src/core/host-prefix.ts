// The context prefix and CIDR matching live in the one address module (src/core/address.ts).
export { hostPrefix, createCidrMatcher } from './address.js';
