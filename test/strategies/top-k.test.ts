import { strategyContract } from './contract.js';

strategyContract('top-k');
