import { strategyContract } from './contract.js';

strategyContract('ucb');
