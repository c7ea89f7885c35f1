import * as gcp from '@pulumi/gcp';
import * as pulumi from '@pulumi/pulumi';
import { childOptions, type ComponentOptions } from './options';

/**
 * Postgres itself: the jobs connect directly to the PSC endpoint, so the Cloud SQL connectors' port 3307 is
 * never dialled ("If you connect directly, then you don't need any IAM roles or permissions",
 * https://cloud.google.com/sql/docs/postgres/configure-private-service-connect).
 */
export const DATABASE_PORTS = ['5432'];

export interface NetworkArgs {
  project: pulumi.Input<string>;
  region: pulumi.Input<string>;
  /** Range of the subnet the jobs' Direct VPC egress interfaces and the PSC endpoint live in. */
  subnetCidr: pulumi.Input<string>;
  /** The Cloud SQL instance's `pscServiceAttachmentLink` (ours, or the existing instance's in sourceMode cloudsql). */
  serviceAttachment: pulumi.Input<string>;
  /**
   * The DNS name the jobs dial (PGHOST), with or without the trailing dot: Cloud SQL's PSC name, e.g.
   * "abc.def.us-central1.sql.goog." or "abc.def.us-central1.sql-psc.goog.".
   */
  instanceDnsName: pulumi.Input<string>;
  /** Network tag the jobs' interfaces carry; the firewall rules target it. */
  jobTag: string;
}

/**
 * The VPC the jobs run in: one subnet, a Private Service Connect endpoint for Cloud SQL (internal address +
 * forwarding rule to the instance's service attachment), a private DNS zone so the instance's DNS name
 * resolves to that endpoint, and egress rules that let the jobs reach the database and nothing else
 * in the VPC. No ingress rule exists: the VPC's implied rule denies all ingress.
 */
export class Network extends pulumi.ComponentResource {
  readonly network: gcp.compute.Network;
  readonly subnetwork: gcp.compute.Subnetwork;
  readonly pscAddress: gcp.compute.Address;
  readonly pscForwardingRule: gcp.compute.ForwardingRule;
  readonly dnsZone: gcp.dns.ManagedZone;
  readonly dnsRecord: gcp.dns.RecordSet;
  readonly jobTag: string;

  constructor(name: string, args: NetworkArgs, opts?: ComponentOptions) {
    super('pgcdc:infra:Network', name, {}, opts);
    const child = childOptions(this, opts);
    this.jobTag = args.jobTag;

    this.network = new gcp.compute.Network(
      `${name}-vpc`,
      { project: args.project, autoCreateSubnetworks: false, routingMode: 'REGIONAL' },
      child,
    );

    this.subnetwork = new gcp.compute.Subnetwork(
      `${name}-jobs`,
      {
        project: args.project,
        region: args.region,
        network: this.network.id,
        ipCidrRange: args.subnetCidr,
        // Lets the jobs reach Google APIs from the VPC without external addresses.
        privateIpGoogleAccess: true,
      },
      child,
    );

    this.pscAddress = new gcp.compute.Address(
      `${name}-sql-psc`,
      {
        project: args.project,
        region: args.region,
        addressType: 'INTERNAL',
        subnetwork: this.subnetwork.id,
        description: 'Private Service Connect endpoint of the Cloud SQL instance',
      },
      child,
    );

    this.pscForwardingRule = new gcp.compute.ForwardingRule(
      `${name}-sql-psc`,
      {
        project: args.project,
        region: args.region,
        network: this.network.id,
        ipAddress: this.pscAddress.selfLink,
        target: args.serviceAttachment,
        // A consumer endpoint for a published service has no load balancing scheme (empty string).
        loadBalancingScheme: '',
      },
      child,
    );

    // The zone is the instance's DNS name itself, its one A record at the apex: whatever name Cloud SQL
    // reports (`<id>.<id>.<region>.sql.goog.`, or "0123456789ab.fedcba9876543.us-central1.sql-psc.goog" as
    // the Cloud SQL connectors document PSC names now, GoogleCloudPlatform/cloud-sql-python-connector#1446),
    // the record is inside its zone. A zone for `<region>.sql.goog.`
    // would not hold a `sql-psc.goog.` name, and Cloud DNS refuses a record outside its zone: "The managed
    // zone holds DNS records for the same DNS name suffix" (https://cloud.google.com/dns/docs/overview).
    // A private zone answers only inside our VPC, so the name is not shadowed anywhere else. The zone's
    // `name` is left to Pulumi's auto-naming ("using the logical name and a random suffix to construct a
    // unique physical name", https://www.pulumi.com/docs/iac/concepts/resources/names/), e.g.
    // `pgcdc-net-sql-dns-1a2b3c4`, so a replacement never collides with the zone it replaces. It fits the
    // rule "The name must be 1-63 characters long, must begin with a letter, end with a letter or digit, and
    // only contain lowercase letters, digits or dashes" (https://cloud.google.com/dns/api/v1/managedZones):
    // namePrefix (config.ts) is at most 12 such characters and starts with a letter.
    const fqdn = pulumi.output(args.instanceDnsName).apply(absoluteDnsName);
    this.dnsZone = new gcp.dns.ManagedZone(
      `${name}-sql-dns`,
      {
        project: args.project,
        dnsName: fqdn,
        visibility: 'private',
        privateVisibilityConfig: { networks: [{ networkUrl: this.network.id }] },
        description: 'Resolves the Cloud SQL instance DNS name to its PSC endpoint',
      },
      child,
    );

    this.dnsRecord = new gcp.dns.RecordSet(
      `${name}-sql-dns`,
      {
        project: args.project,
        managedZone: this.dnsZone.name,
        // The zone apex: the record's name is the zone's DNS name.
        name: this.dnsZone.dnsName,
        type: 'A',
        ttl: 300,
        rrdatas: [this.pscAddress.address],
      },
      child,
    );

    // Lowest-priority deny for everything the jobs send into the VPC; the allow below opens the database only.
    // (Direct VPC egress in PRIVATE_RANGES_ONLY mode sends Google API traffic outside the VPC, so it is unaffected.)
    new gcp.compute.Firewall(
      `${name}-deny-job-egress`,
      {
        project: args.project,
        network: this.network.id,
        direction: 'EGRESS',
        priority: 65534,
        targetTags: [args.jobTag],
        destinationRanges: ['0.0.0.0/0'],
        denies: [{ protocol: 'all' }],
        description: 'Jobs may not reach anything in the VPC except the database endpoint',
      },
      child,
    );
    new gcp.compute.Firewall(
      `${name}-allow-job-to-sql`,
      {
        project: args.project,
        network: this.network.id,
        direction: 'EGRESS',
        priority: 1000,
        targetTags: [args.jobTag],
        destinationRanges: [pulumi.interpolate`${this.pscAddress.address}/32`],
        allows: [{ protocol: 'tcp', ports: DATABASE_PORTS }],
        description: 'Jobs reach Cloud SQL through its PSC endpoint (Postgres, 5432)',
      },
      child,
    );

    this.registerOutputs({ network: this.network.id, subnetwork: this.subnetwork.id });
  }
}

/** `name` as an absolute DNS name (one trailing dot); refuses an empty name, which would make a root zone. */
export function absoluteDnsName(name: string): string {
  const trimmed = name.replace(/\.+$/, '');
  if (!trimmed) throw new Error('the Cloud SQL instance has no DNS name for its PSC endpoint');
  return `${trimmed}.`;
}
