// Worker threads do not inherit `node --import tsx`: register tsx here, then load the
// TypeScript runner, which sees it is a worker and runs the job in workerData.
import { register } from 'tsx/esm/api';

register();
await import('./fuzz.ts');
