/** The wire protocol between agents and the coordinator: each message once, as its JSON schema, with its type derived. */
export * from './protocol.js';
