// Mocha root hooks: stop the shared local stack once every suite has run.
import { stopTestStack } from './stack';

export const mochaHooks = {
  async afterAll(this: unknown): Promise<void> {
    await stopTestStack();
  },
};
