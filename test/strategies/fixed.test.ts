import { strategyContract } from './contract.js';

strategyContract('fixed');
