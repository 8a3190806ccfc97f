import { strategyContract } from './contract.js';

// Its /24-under-tags ranking is tested with ucb's in prefix-ranking.test.ts.
strategyContract('epsilon-greedy');
