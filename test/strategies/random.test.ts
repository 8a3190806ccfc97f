import { strategyContract } from './contract.js';

strategyContract('random');
