// Just the part of js-yaml 3 the CLI uses (the package ships no types; @types/js-yaml is not installed).
declare module 'js-yaml' {
  /** Parses YAML with the safe schema (no custom JS types). */
  export function safeLoad(text: string, opts?: { filename?: string }): unknown;
}
