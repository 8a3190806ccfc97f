import { strategyContract } from './contract.js';

strategyContract('lin-ucb');
