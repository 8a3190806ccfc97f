import { strategyContract } from './contract.js';

strategyContract('epsilon-greedy');
