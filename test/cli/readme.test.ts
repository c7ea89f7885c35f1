// The README's CLI reference is exactly what `--help` prints, command by command.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { defaultDeps, repoRoot } from '../../cli/deps';
import { EXIT } from '../../cli/errors';
import { withReference } from '../../cli/help-doc';
import { cliReference } from '../../cli/program';

describe("the README's CLI section", () => {
  const readme = readFileSync(path.join(repoRoot(), 'README.md'), 'utf8');

  it('holds the help of every command exactly (regenerate with npm run docs:cli)', () => {
    assert.equal(readme, withReference(readme, cliReference(defaultDeps())));
  });

  it('the reference is what the pgcdc executable prints for --help', () => {
    const main = path.join(repoRoot(), 'dist', 'cli', 'main.js');
    const printed = execFileSync(process.execPath, [main, 'status', '--help'], { encoding: 'utf8' });
    assert.ok(readme.includes(`$ pgcdc status --help\n${printed}`), printed);
  });

  it('documents every exit code', () => {
    for (const [name, code] of Object.entries(EXIT)) {
      assert.match(readme, new RegExp(`\\| ${code} \\| \`${name}\` \\|`), `exit code ${code} (${name})`);
    }
  });
});
