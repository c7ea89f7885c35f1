// Reads a stack's configuration file (Pulumi.<env>.yaml) from disk and validates it with the same
// validateConfig the Pulumi program uses — before any workspace is created or any cloud API is called.
// Every problem of the file is reported at once: keys Pulumi would refuse (missing required ones, unknown
// ones, with a suggestion for a misspelling) and every value validateConfig refuses. Values stored
// encrypted (`pulumi config set --secret`) are accepted as present; Pulumi decrypts and the program checks them.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { load } from 'js-yaml';
import { CONFIG_KEYS, ConfigError, EncryptedValue } from '../infra/config';
import { ConfigInvalidError, UsageError } from './errors';

export type ValidateConfig<C> = (raw: Record<string, unknown>) => C;

function readYaml(file: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = load(readFileSync(file, 'utf8'), { filename: file });
  } catch (e) {
    throw new ConfigInvalidError(`${path.basename(file)} is not valid YAML: ${(e as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc))
    throw new ConfigInvalidError(`${path.basename(file)} is not a YAML mapping`);
  return doc as Record<string, unknown>;
}

/** A project config declaration in Pulumi.yaml (`config:` entry); a bare value is shorthand for a default. */
export interface ConfigDeclaration {
  type?: string;
  default?: unknown;
  value?: unknown;
  description?: string;
  secret?: boolean;
}

export interface ProjectFile {
  name: string;
  config: Record<string, ConfigDeclaration>;
}

/** Pulumi.yaml: the project name (config keys of the project are "<name>:<key>") and its config declarations. */
export function readProject(workDir: string): ProjectFile {
  const file = path.join(workDir, 'Pulumi.yaml');
  if (!existsSync(file)) throw new ConfigInvalidError(`no Pulumi.yaml in ${workDir}`);
  const doc = readYaml(file);
  const name = doc.name;
  if (typeof name !== 'string' || !name) throw new ConfigInvalidError('Pulumi.yaml has no project name');
  const config: Record<string, ConfigDeclaration> = {};
  const declared = doc.config;
  if (declared && typeof declared === 'object' && !Array.isArray(declared)) {
    for (const [key, decl] of Object.entries(declared as Record<string, unknown>)) {
      const isSchema = decl !== null && typeof decl === 'object' && !Array.isArray(decl);
      config[key] = isSchema ? (decl as ConfigDeclaration) : { default: decl };
    }
  }
  return { name, config };
}

/** The project name from Pulumi.yaml. */
export function projectName(workDir: string): string {
  return readProject(workDir).name;
}

/** "org/project/dev" or "org/dev" → "dev": the file is named after the stack's own name. */
export function stackFileName(env: string): string {
  const name = env.split('/').pop() ?? env;
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new UsageError(`"${env}" is not a stack name`);
  return `Pulumi.${name}.yaml`;
}

/** The `config:` mapping of Pulumi.<env>.yaml, keys as written ("pgcdc:region", "gcp:project"). */
export function stackConfigEntries(workDir: string, env: string): Record<string, unknown> {
  const file = path.join(workDir, stackFileName(env));
  if (!existsSync(file)) {
    throw new ConfigInvalidError(
      `no ${path.basename(file)} in ${workDir}`,
      `Create it from Pulumi.dev.yaml (at least gcp:project), e.g. cp Pulumi.dev.yaml ${path.basename(file)}`,
    );
  }
  const config = readYaml(file).config ?? {};
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ConfigInvalidError(`${path.basename(file)}: "config" is not a mapping`);
  }
  return config as Record<string, unknown>;
}

/** `{secure: "v1:..."}`: how Pulumi writes a value set with `pulumi config set --secret`. */
function isSecure(value: unknown): value is { secure: string } {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.keys(value).length === 1 &&
    typeof (value as { secure?: unknown }).secure === 'string'
  );
}

/**
 * The raw configuration in the shape validateConfig takes: the project's own keys without their
 * "<project>:" prefix, other namespaces (gcp:project) kept whole. Values are given as Pulumi's Config.get
 * would return them: strings, structured values as JSON text; encrypted values as EncryptedValue.
 */
export function rawStackConfig(workDir: string, env: string): Record<string, unknown> {
  const project = projectName(workDir);
  const raw: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(stackConfigEntries(workDir, env))) {
    const name = key.startsWith(`${project}:`) ? key.slice(project.length + 1) : key;
    raw[name] = isSecure(value)
      ? new EncryptedValue(value.secure)
      : typeof value === 'string'
        ? value
        : JSON.stringify(value);
  }
  return raw;
}

/**
 * What Pulumi itself refuses before the program runs, as one message per key:
 * - a project key declared without a default (or value) that the stack does not set: Pulumi's
 *   `mergeConfig` (sdk/go/common/workspace/config.go) adds it to the missing keys when
 *   `!foundOnStack && !hasValue && !hasDefault && key.Namespace() == projectName`, and the run stops with
 *   "Stack 'dev' is missing configuration value '...'" — the rule Pulumi's own test
 *   TestStackConfigErrorsWhenMissingStackValueForConfigTypeWithNoDefault (sdk/go/common/workspace/project_test.go,
 *   pulumi/pulumi) pins down. The `type` plays no part: only a default (or value) makes a key optional.
 * - a key of the project's namespace that neither Pulumi.yaml nor the program knows (a misspelling such as
 *   pgcdc:regoin would otherwise be silently ignored), with the closest known key as suggestion.
 */
export function pulumiConfigProblems(
  project: ProjectFile,
  stackName: string,
  entries: Record<string, unknown>,
  known: readonly string[] = CONFIG_KEYS,
): string[] {
  const problems: string[] = [];
  const prefix = `${project.name}:`;
  const ownKey = (key: string) =>
    key.startsWith(prefix) ? key.slice(prefix.length) : key.includes(':') ? undefined : key;
  const set = new Set(
    Object.keys(entries)
      .map(ownKey)
      .filter((k): k is string => k !== undefined),
  );
  for (const [key, decl] of Object.entries(project.config)) {
    // Keys declared for another namespace ("gcp:project") are the provider's business.
    if (key.includes(':') && !key.startsWith(prefix)) continue;
    const name = ownKey(key)!;
    if (!set.has(name) && decl.default === undefined && decl.value === undefined) {
      problems.push(
        `Stack '${stackName}' is missing configuration value '${name}' (Pulumi.yaml declares it without a default): set ${prefix}${name}`,
      );
    }
  }
  const knownNames = new Set([
    ...known,
    ...Object.keys(project.config)
      .map(ownKey)
      .filter((k): k is string => !!k),
  ]);
  for (const key of Object.keys(entries)) {
    const name = ownKey(key);
    if (name === undefined || knownNames.has(name)) continue;
    const guess = closest(name, [...knownNames]);
    problems.push(
      `unknown key ${prefix}${name}` +
        (guess ? `: did you mean ${prefix}${guess}?` : `: not a pgcdc setting (see Pulumi.yaml)`),
    );
  }
  return problems;
}

/** The known key nearest to `name` (edit distance at most a third of its length, case ignored), if any. */
export function closest(name: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** Validated configuration of a stack, or one ConfigInvalidError listing every key to fix in the file. */
export function loadStackConfig<C>(workDir: string, env: string, validate: ValidateConfig<C>): C {
  const file = stackFileName(env);
  const project = readProject(workDir);
  const stackName = file.slice('Pulumi.'.length, -'.yaml'.length);
  const problems = pulumiConfigProblems(project, stackName, stackConfigEntries(workDir, env));
  const raw = rawStackConfig(workDir, env);
  let config: C | undefined;
  try {
    config = validate(raw);
  } catch (e) {
    if (e instanceof ConfigError) problems.push(...e.problems.map((p) => `config ${p.key}: ${p.problem}`));
    else problems.push((e as Error).message);
  }
  if (problems.length > 0) {
    const what =
      problems.length === 1 ? problems[0]! : `${problems.length} problems:\n  ${problems.join('\n  ')}`;
    throw new ConfigInvalidError(`${file}: ${what}`);
  }
  return config as C;
}
