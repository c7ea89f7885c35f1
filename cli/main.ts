#!/usr/bin/env node
// The `pgcdc` executable: real dependencies, the user's arguments, the exit code of the one error handler.

import { defaultDeps } from './deps';
import { runCli } from './program';

runCli(process.argv.slice(2), defaultDeps()).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    // runCli handles every error; reaching here is a bug in the handler itself.
    console.error(e);
    process.exitCode = 1;
  },
);
