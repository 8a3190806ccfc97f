import { strategyContract } from './contract.js';

strategyContract('thompson');
