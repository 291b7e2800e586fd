// The plugin's resolved configuration: the operator's answer to GET /flex/config (operatorConfig.ts)
// with the local overrides of Flex's ui_attributes.custom_data.flexOperator (settings.ts), checked
// once at start. Every check that the operator's routes would make later (a public URL Twilio can
// sign, Kubernetes names, SIDs) is made here, so a bad configuration stops the plugin with one clear
// message instead of failing call by call.

/** The key of custom_data the plugin reads. */
export const CONFIG_KEY = 'flexOperator';

/** System activities of the seed customisation: the operator moves agents into them, agents never pick them. */
export const DEFAULT_SYSTEM_ACTIVITIES = [
  'On a Task',
  'On a Task, No ACD',
  'Wrap Up',
  'Wrap Up, No ACD',
  'Extended Wrap Up',
];

/** How long a graceful mark may hold up a hang-up or transfer, when not configured. */
export const DEFAULT_GRACEFUL_TIMEOUT_MS = 1500;
const MAX_GRACEFUL_TIMEOUT_MS = 5000;

/** A ConferenceRecoveryPolicy whose protected workflows the plugin attaches the callback for. */
export interface PolicyConfig {
  /** Namespace and name of the ConferenceRecoveryPolicy. */
  namespace: string;
  name: string;
  /** The operator's public URL for this policy (its spec.publicBaseUrl, else the operator's). */
  publicUrl: string;
  /** The policy's spec.protectedWorkflowSids. */
  workflowSids: string[];
}

export interface RecoveryConfig {
  policies: PolicyConfig[];
  /** Bound on the wait for a graceful mark before the hang-up or transfer goes on. */
  gracefulTimeoutMs: number;
  /** Accept Recovery Ping and reconnect tasks offered to this agent without a click. */
  autoAccept: boolean;
}

export interface ActivityConfig {
  /** The worker attribute the operator keeps the deferred activity in (WorkerActivityPolicy spec.pendingActivityAttribute). */
  pendingActivityAttribute: string;
  /** The task attribute set to true to extend wrap-up (what the activity engine reads). */
  extendedWrapupAttribute: string;
  /** Activities agents may not pick: the policy's system activities. */
  systemActivities: string[];
  /**
   * The policy's activityChangeWhileBusy is Defer (the default): a supervisor changing a busy
   * agent's activity is told it applies when the agent's tasks are done.
   */
  deferWhileBusy: boolean;
}

export interface PluginConfig {
  recovery?: RecoveryConfig;
  activity?: ActivityConfig;
}

export type ConfigResult =
  | { kind: 'ok'; config: PluginConfig }
  | { kind: 'disabled' }
  | { kind: 'invalid'; errors: string[] };

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

// Kubernetes names, as the operator's routes check them (a DNS-1123 label for the namespace, a
// DNS-1123 subdomain for the policy); anything else would get 404 from every route.
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const WORKFLOW_SID = /^WW[0-9a-f]{32}$/;
const ATTRIBUTE_NAME = /^[a-zA-Z_][a-zA-Z0-9_]{0,63}$/;

export const isNamespace = (s: string): boolean => s.length <= 63 && DNS1123_LABEL.test(s);
export const isPolicyName = (s: string): boolean => s.length <= 253 && DNS1123_SUBDOMAIN.test(s);

/**
 * checkPublicUrl returns the base URL the plugin builds Twilio URLs on, or an error. The URL is kept
 * exactly as written (bar one trailing slash, which the operator drops too): Twilio signs the URL it
 * is given, the operator checks the signature against its own configured URL, so any rewriting
 * here (a host's case, an escaped path) would break every signature. http:// is refused unless
 * allowHttp (local development): the Flex page is https, so the browser blocks every call to an
 * http:// URL as mixed content, and Twilio would post the customer's call events in clear.
 */
export function checkPublicUrl(raw: string, allowHttp = false): { url: string } | { error: string } {
  if (/\s/.test(raw)) {
    return { error: 'must not contain spaces' };
  }
  const m = /^(https?):\/\/([^/?#@]+)(\/[^?#]*)?$/.exec(raw);
  if (!m) {
    return { error: 'must be an absolute https URL without a query, fragment or user info' };
  }
  if (m[1] === 'http' && !allowHttp) {
    return {
      error:
        'must be an https URL: the Flex page is https, so the browser blocks http:// calls as mixed content ' +
        '(set custom_data.flexOperator.allowInsecureHttp to true for local development only)',
    };
  }
  try {
    // A host the browser cannot parse (a bad port, say) is refused too.
    new URL(raw);
  } catch (e) {
    return { error: `is not a URL: ${(e as Error).message}` };
  }
  return { url: raw.endsWith('/') ? raw.slice(0, -1) : raw };
}

class Checker {
  errors: string[] = [];

  constructor(readonly allowHttp = false) {}

  fail(path: string, msg: string): void {
    this.errors.push(`${path} ${msg}`);
  }

  str(o: Obj, key: string, path: string, def?: string): string {
    const v = o[key];
    if (v === undefined && def !== undefined) {
      return def;
    }
    if (typeof v !== 'string' || v === '') {
      this.fail(`${path}.${key}`, 'must be a non-empty string');
      return '';
    }
    return v;
  }

  bool(o: Obj, key: string, path: string, def: boolean): boolean {
    const v = o[key];
    if (v === undefined) {
      return def;
    }
    if (typeof v !== 'boolean') {
      this.fail(`${path}.${key}`, 'must be true or false');
      return def;
    }
    return v;
  }

  strings(o: Obj, key: string, path: string, def?: string[]): string[] {
    const v = o[key];
    if (v === undefined && def !== undefined) {
      return def;
    }
    if (!Array.isArray(v) || v.length === 0 || v.some((s) => typeof s !== 'string' || s === '')) {
      this.fail(`${path}.${key}`, 'must be a non-empty list of non-empty strings');
      return [];
    }
    return v as string[];
  }

  url(raw: string, path: string): string {
    const r = checkPublicUrl(raw, this.allowHttp);
    if ('error' in r) {
      this.fail(path, r.error);
      return '';
    }
    return r.url;
  }

  unknownKeys(o: Obj, known: string[], path: string): void {
    Object.keys(o)
      .filter((k) => !known.includes(k))
      .forEach((k) => this.fail(`${path}.${k}`, `is not a known setting (known: ${known.join(', ')})`));
  }
}

interface Defaults {
  namespace?: string;
  publicUrl?: string;
}

function checkRecovery(c: Checker, r: unknown, defaults: Defaults, path: string): RecoveryConfig | undefined {
  if (!isObject(r)) {
    c.fail(path, 'must be an object');
    return undefined;
  }
  c.unknownKeys(r, ['policies', 'gracefulTimeoutMs', 'autoAccept'], path);
  const policies: PolicyConfig[] = [];
  const raw = r.policies;
  if (!Array.isArray(raw) || raw.length === 0) {
    c.fail(`${path}.policies`, 'must be a non-empty list of {"name", "workflowSids"}');
  } else {
    raw.forEach((p, i) => {
      const pp = `${path}.policies[${i}]`;
      if (!isObject(p)) {
        c.fail(pp, 'must be an object');
        return;
      }
      c.unknownKeys(p, ['name', 'namespace', 'publicUrl', 'workflowSids'], pp);
      const namespace = c.str(p, 'namespace', pp, defaults.namespace);
      if (namespace !== '' && !isNamespace(namespace)) {
        c.fail(`${pp}.namespace`, `"${namespace}" is not a Kubernetes namespace name`);
      }
      const name = c.str(p, 'name', pp);
      if (name !== '' && !isPolicyName(name)) {
        c.fail(`${pp}.name`, `"${name}" is not a Kubernetes object name`);
      }
      let publicUrl = defaults.publicUrl ?? '';
      if (p.publicUrl !== undefined || defaults.publicUrl === undefined) {
        const raw = c.str(p, 'publicUrl', pp);
        publicUrl = raw === '' ? '' : c.url(raw, `${pp}.publicUrl`);
      }
      const workflowSids = c.strings(p, 'workflowSids', pp);
      workflowSids
        .filter((s) => !WORKFLOW_SID.test(s))
        .forEach((s) => c.fail(`${pp}.workflowSids`, `"${s}" is not a workflow SID (WW and 32 lower-case hex digits)`));
      policies.push({ namespace, name, publicUrl, workflowSids });
    });
  }
  // A workflow protected by two policies would get two callbacks; Flex takes one.
  const owner = new Map<string, string>();
  policies.forEach((p) =>
    p.workflowSids.forEach((w) => {
      const prev = owner.get(w);
      if (prev !== undefined && prev !== `${p.namespace}/${p.name}`) {
        c.fail(`${path}.policies`, `workflow ${w} is listed by both ${prev} and ${p.namespace}/${p.name}`);
      }
      owner.set(w, `${p.namespace}/${p.name}`);
    }),
  );
  let gracefulTimeoutMs = DEFAULT_GRACEFUL_TIMEOUT_MS;
  if (r.gracefulTimeoutMs !== undefined) {
    const t = r.gracefulTimeoutMs;
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 100 || t > MAX_GRACEFUL_TIMEOUT_MS) {
      c.fail(`${path}.gracefulTimeoutMs`, `must be a whole number of milliseconds from 100 to ${MAX_GRACEFUL_TIMEOUT_MS}`);
    } else {
      gracefulTimeoutMs = t;
    }
  }
  return { policies, gracefulTimeoutMs, autoAccept: c.bool(r, 'autoAccept', path, true) };
}

function checkActivity(c: Checker, a: unknown, path: string): ActivityConfig | undefined {
  if (a === true) {
    a = {};
  }
  if (!isObject(a)) {
    c.fail(path, 'must be an object (or true for the defaults)');
    return undefined;
  }
  c.unknownKeys(a, ['pendingActivityAttribute', 'extendedWrapupAttribute', 'systemActivities', 'activityChangeWhileBusy'], path);
  const pendingActivityAttribute = c.str(a, 'pendingActivityAttribute', path, 'pendingActivity');
  const extendedWrapupAttribute = c.str(a, 'extendedWrapupAttribute', path, 'extendedWrapup');
  [
    ['pendingActivityAttribute', pendingActivityAttribute],
    ['extendedWrapupAttribute', extendedWrapupAttribute],
  ].forEach(([k, v]) => {
    if (v !== '' && !ATTRIBUTE_NAME.test(v)) {
      c.fail(`${path}.${k}`, `"${v}" is not an attribute name (a letter or _, then letters, digits or _)`);
    }
  });
  const systemActivities = c.strings(a, 'systemActivities', path, DEFAULT_SYSTEM_ACTIVITIES);
  const busy = c.str(a, 'activityChangeWhileBusy', path, 'Defer');
  if (busy !== '' && busy !== 'Defer' && busy !== 'Allow') {
    c.fail(`${path}.activityChangeWhileBusy`, 'must be Defer or Allow (as the WorkerActivityPolicy says)');
  }
  return { pendingActivityAttribute, extendedWrapupAttribute, systemActivities, deferWhileBusy: busy !== 'Allow' };
}

export interface ReadOptions {
  /** Accept http:// public URLs (local development only). */
  allowInsecureHttp?: boolean;
}

/**
 * readConfig checks a resolved configuration ({flexOperator: {…}}, as resolveConfig builds it) and
 * returns the plugin's configuration, "disabled" when flexOperator.enabled is false, or every
 * problem found.
 */
export function readConfig(customData: unknown, o: ReadOptions = {}): ConfigResult {
  const path = `custom_data.${CONFIG_KEY}`;
  const top = isObject(customData) ? customData[CONFIG_KEY] : undefined;
  if (top === undefined) {
    return { kind: 'invalid', errors: [`${path} is missing from the Flex configuration (ui_attributes.custom_data)`] };
  }
  if (!isObject(top)) {
    return { kind: 'invalid', errors: [`${path} must be an object`] };
  }
  const c = new Checker(o.allowInsecureHttp);
  c.unknownKeys(top, ['enabled', 'publicUrl', 'namespace', 'recovery', 'activity'], path);
  if (!c.bool(top, 'enabled', path, true)) {
    return c.errors.length > 0 ? { kind: 'invalid', errors: c.errors } : { kind: 'disabled' };
  }
  const defaults: Defaults = {};
  if (top.publicUrl !== undefined) {
    const raw = c.str(top, 'publicUrl', path);
    defaults.publicUrl = raw === '' ? '' : c.url(raw, `${path}.publicUrl`);
  }
  if (top.namespace !== undefined) {
    defaults.namespace = c.str(top, 'namespace', path);
    if (defaults.namespace !== '' && !isNamespace(defaults.namespace)) {
      c.fail(`${path}.namespace`, `"${defaults.namespace}" is not a Kubernetes namespace name`);
    }
  }
  const config: PluginConfig = {};
  if (top.recovery !== undefined) {
    config.recovery = checkRecovery(c, top.recovery, defaults, `${path}.recovery`);
  }
  if (top.activity !== undefined) {
    config.activity = checkActivity(c, top.activity, `${path}.activity`);
  }
  if (top.recovery === undefined && top.activity === undefined) {
    c.fail(path, 'configures nothing: give "recovery", "activity" or both');
  }
  if (c.errors.length > 0) {
    return { kind: 'invalid', errors: c.errors };
  }
  return { kind: 'ok', config };
}
