// Reads a stack's configuration file (Pulumi.<env>.yaml) from disk and validates it with the same
// validateConfig the Pulumi program uses — before any workspace is created or any cloud API is called.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { load } from 'js-yaml';
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

/** The project name from Pulumi.yaml: config keys of the project are "<name>:<key>". */
export function projectName(workDir: string): string {
  const file = path.join(workDir, 'Pulumi.yaml');
  if (!existsSync(file)) throw new ConfigInvalidError(`no Pulumi.yaml in ${workDir}`);
  const name = readYaml(file).name;
  if (typeof name !== 'string' || !name) throw new ConfigInvalidError('Pulumi.yaml has no project name');
  return name;
}

/** "org/project/dev" or "org/dev" → "dev": the file is named after the stack's own name. */
export function stackFileName(env: string): string {
  const name = env.split('/').pop() ?? env;
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new UsageError(`"${env}" is not a stack name`);
  return `Pulumi.${name}.yaml`;
}

/**
 * The raw configuration in the shape validateConfig takes: the project's own keys without their
 * "<project>:" prefix, other namespaces (gcp:project) kept whole. Values are given as Pulumi's Config.get
 * would return them: strings, structured values as JSON text.
 */
export function rawStackConfig(workDir: string, env: string): Record<string, unknown> {
  const file = path.join(workDir, stackFileName(env));
  if (!existsSync(file)) {
    throw new ConfigInvalidError(
      `no ${path.basename(file)} in ${workDir}`,
      `Create it from Pulumi.dev.yaml (at least gcp:project), e.g. cp Pulumi.dev.yaml ${path.basename(file)}`,
    );
  }
  const project = projectName(workDir);
  const config = readYaml(file).config ?? {};
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ConfigInvalidError(`${path.basename(file)}: "config" is not a mapping`);
  }
  const raw: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config as Record<string, unknown>)) {
    const name = key.startsWith(`${project}:`) ? key.slice(project.length + 1) : key;
    raw[name] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  return raw;
}

/** Validated configuration of a stack, or a ConfigInvalidError saying which key to fix in which file. */
export function loadStackConfig<C>(workDir: string, env: string, validate: ValidateConfig<C>): C {
  const raw = rawStackConfig(workDir, env);
  try {
    return validate(raw);
  } catch (e) {
    throw new ConfigInvalidError(`${stackFileName(env)}: ${(e as Error).message}`);
  }
}
