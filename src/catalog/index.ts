export { PortCatalog, NMAP_SERVICES_PATHS, loadNmapServices, parseNmapServices } from './nmap-services.js';
export { type ServiceEntry, parseServicesFile, formatServicesFile, tcpPorts, defaultServices } from './services-file.js';
