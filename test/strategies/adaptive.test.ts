import { strategyContract } from './contract.js';

strategyContract('adaptive');
