// Writes the package.json of a job image: only the packages the job's compiled code actually requires.
//
// The repository's package.json also lists the CLI's and the Pulumi program's runtime dependencies
// (@pulumi/*, commander, @google-cloud/run): installing all of them would put hundreds of MB the jobs never
// load into each image. Instead the Dockerfile compiles the job, this script reads what the compiled files
// `require`, and `npm install --omit=dev` then installs just those, at the versions package-lock.json pins.
//
// Usage (inside the image build): node job-deps.js <package.json> <package-lock.json> <out.json> <dir>...
// Plain Node only (no dependency of its own), so it runs before anything is installed for the job.
import { builtinModules } from 'node:module';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

interface PackageJson {
  name?: string;
  version?: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}
interface PackageLock {
  packages?: Record<string, { version?: string; dev?: boolean }>;
}

const BUILTINS = new Set(builtinModules);

/** Every .js file under the given directories. */
export function jsFiles(dirs: string[]): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    if (statSync(p).isDirectory()) for (const e of readdirSync(p)) walk(path.join(p, e));
    else if (p.endsWith('.js')) out.push(p);
  };
  dirs.forEach(walk);
  return out.sort();
}

/** The specifiers of `require("...")` calls in compiled CommonJS (tsc emits double quotes). */
export function requireSpecifiers(source: string): string[] {
  return [...source.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1]!);
}

/** "@scope/pkg/sub" → "@scope/pkg", "pg/lib/x" → "pg"; undefined for relative paths and Node built-ins. */
export function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('/')) return undefined;
  if (specifier.startsWith('node:') || BUILTINS.has(specifier.split('/')[0]!)) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** The packages the compiled code under `dirs` loads. */
export function requiredPackages(dirs: string[]): string[] {
  const names = new Set<string>();
  for (const file of jsFiles(dirs)) {
    for (const spec of requireSpecifiers(readFileSync(file, 'utf8'))) {
      const name = packageOf(spec);
      if (name !== undefined) names.add(name);
    }
  }
  return [...names].sort();
}

/**
 * The job's package.json: each required package at the range the repository declares. A package the code
 * requires but the repository only has as a transitive dependency is pinned to the locked version (with a
 * warning: it should be declared); one that is only a devDependency, or not installed at all, is an error —
 * the image would crash on its first `require`.
 */
export function jobPackageJson(
  pkg: PackageJson,
  lock: PackageLock,
  required: string[],
): { packageJson: PackageJson; warnings: string[] } {
  const dependencies: Record<string, string> = {};
  const warnings: string[] = [];
  for (const name of required) {
    const declared = pkg.dependencies?.[name];
    if (declared !== undefined) {
      dependencies[name] = declared;
      continue;
    }
    if (pkg.devDependencies?.[name] !== undefined) {
      throw new Error(`the job requires "${name}", which is only a devDependency: move it to dependencies`);
    }
    const locked = lock.packages?.[`node_modules/${name}`];
    if (locked?.version === undefined || locked.dev === true) {
      throw new Error(
        `the job requires "${name}", which package.json does not declare and the lockfile does not hold`,
      );
    }
    dependencies[name] = locked.version;
    warnings.push(
      `"${name}" is required but only installed as a dependency of a dependency; pinned to ${locked.version}`,
    );
  }
  return {
    packageJson: { name: `${pkg.name ?? 'app'}-job`, version: pkg.version ?? '0.0.0', dependencies },
    warnings,
  };
}

function main(args: string[]): void {
  const [pkgFile, lockFile, outFile, ...dirs] = args;
  if (!pkgFile || !lockFile || !outFile || dirs.length === 0) {
    throw new Error('usage: job-deps <package.json> <package-lock.json> <out.json> <compiled dir>...');
  }
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as PackageJson;
  const lock = JSON.parse(readFileSync(lockFile, 'utf8')) as PackageLock;
  const { packageJson, warnings } = jobPackageJson(pkg, lock, requiredPackages(dirs));
  for (const w of warnings) process.stderr.write(`job-deps: warning: ${w}\n`);
  writeFileSync(outFile, JSON.stringify({ private: true, ...packageJson }, null, 2) + '\n');
  process.stdout.write(`job-deps: ${Object.keys(packageJson.dependencies ?? {}).join(', ')}\n`);
}

if (require.main === module) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`job-deps: ${(e as Error).message}\n`);
    process.exit(1);
  }
}
