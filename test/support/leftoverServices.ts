// Set-up file of every test file (vitest.config.ts): once the file is done, whatever service processes it left
// running are killed, whether or not its own hooks got to stop them.
import { afterAll } from 'vitest';
import { killLeftoverServices } from './serviceProcess.js';

afterAll(killLeftoverServices);
