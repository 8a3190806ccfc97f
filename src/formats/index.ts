/** Scanner output formats: nmap XML and masscan's outputs, parsed strictly. */
export * from './nmap-xml.js';
export * from './masscan-output.js';
