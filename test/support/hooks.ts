// Mocha root hooks: stop the shared local stack once every suite has run.
import { stopTestStack } from './stack';

// No GCE metadata server exists here; without this, google-auth-library probes for one whenever a Google
// client is built before a test points it at an emulator, and warns.
process.env.METADATA_SERVER_DETECTION = 'none';

export const mochaHooks = {
  async afterAll(this: unknown): Promise<void> {
    await stopTestStack();
  },
};
