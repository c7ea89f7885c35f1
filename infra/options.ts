import * as pulumi from '@pulumi/pulumi';

/**
 * Options of our components. Pulumi does not hand a component's `dependsOn` down to its children, so a
 * component that must wait for something (the project's APIs being enabled) gets it as `waitFor` and
 * passes it to every child through `childOptions`.
 */
export interface ComponentOptions extends pulumi.ComponentResourceOptions {
  waitFor?: pulumi.Resource[];
}

/** Options for a child of `parent`: parented, and waiting for what the component waits for (plus `extra`). */
export function childOptions(
  parent: pulumi.ComponentResource,
  opts: ComponentOptions | undefined,
  extra: pulumi.Resource[] = [],
): pulumi.CustomResourceOptions {
  return { parent, dependsOn: [...(opts?.waitFor ?? []), ...extra] };
}

/** Labels every labelled resource carries, so a bill or a console list can be filtered by stack. */
export function commonLabels(namePrefix: string): Record<string, string> {
  return { app: 'pgcdc', stack: namePrefix, 'managed-by': 'pulumi' };
}
