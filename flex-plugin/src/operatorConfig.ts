// The operator's configuration for this account: GET <operatorUrl>/flex/config?accountSid=AC… with
// the agent's Flex token (webhookserver.FlexConfig), kept for a bounded time in the browser so that
// a page load does not always wait for it, and so that a short operator outage does not turn the
// plugin off.
import { CONFIG_KEY } from './config';
import { Logger } from './flexApi';
import { conferenceCallbackUrl, gracefulUrl } from './routes';
import { PluginSettings } from './settings';

/** The answer versions this plugin reads (webhookserver.FlexConfigVersion). */
export const SUPPORTED_VERSION = 1;

/** A fetched answer is reused for at most this long, whatever the operator says. */
export const MAX_AGE_CAP_SECONDS = 3600;

/**
 * When the operator cannot be reached, a cached answer younger than this is used (with a warning
 * the agent sees); an older one is not, since its policies may have changed since.
 */
export const STALE_LIMIT_MS = 24 * 3600 * 1000;

/** How long the plugin waits for the operator's answer. */
export const FETCH_TIMEOUT_MS = 5000;

export interface OperatorRecoveryPolicy {
  namespace: string;
  name: string;
  publicUrl: string;
  workflowSids: string[];
  routes: { conference: string; graceful: string; recovery: string };
}

export interface OperatorActivityPolicy {
  namespace: string;
  name: string;
  pendingActivityAttribute: string;
  extendedWrapupAttribute: string;
  systemActivities: string[];
  activityChangeWhileBusy: string;
}

/** The operator's answer (webhookserver.FlexConfig). */
export interface OperatorConfig {
  version: number;
  accountSid: string;
  maxAgeSeconds: number;
  recovery?: { gracefulTimeoutMs: number; policies: OperatorRecoveryPolicy[] };
  activity?: { policies: OperatorActivityPolicy[] };
}

/** What the fetch answers; a Response has these. */
export interface ConfigResponse {
  ok: boolean;
  status: number;
  json(): Promise<unknown>;
}

export type ConfigFetch = (url: string, init: RequestInit) => Promise<ConfigResponse>;

/** The part of the Web Storage API the cache uses (window.localStorage in Flex). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface LoadDeps {
  fetch: ConfigFetch;
  /** Where answers are cached; none means no cache (every page load asks). */
  storage?: StorageLike;
  /** Milliseconds since the epoch. */
  now: () => number;
  log: Logger;
}

export type LoadResult =
  /** fresh: just fetched; cached: reused within its max age; stale: reused because the operator could not be asked. */
  | { kind: 'fresh' | 'cached' | 'stale'; config: OperatorConfig; fetchedAt: number }
  /** The operator could not be reached, or answered something unusable, and there is no usable cache. */
  | { kind: 'unreachable'; message: string }
  /** The operator refused the token (401/403): the account has no policy there, or the token is not valid. */
  | { kind: 'refused'; message: string };

/** configUrl is GET /flex/config for the account on the operator's URL. */
export function configUrl(operatorUrl: string, accountSid: string): string {
  return `${operatorUrl}/flex/config?accountSid=${encodeURIComponent(accountSid)}`;
}

const cacheKey = (operatorUrl: string, accountSid: string): string => `flex-operator.config.v${SUPPORTED_VERSION}:${operatorUrl}:${accountSid}`;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** checkAnswer returns the answer if it is one this plugin can read, else why not. */
export function checkAnswer(raw: unknown, accountSid: string): OperatorConfig | string {
  if (!isObject(raw)) {
    return 'the answer is not a JSON object';
  }
  if (raw.version !== SUPPORTED_VERSION) {
    return `the answer is of version ${JSON.stringify(raw.version)}; this plugin reads version ${SUPPORTED_VERSION} (deploy the plugin release that matches the operator)`;
  }
  if (raw.accountSid !== accountSid) {
    return `the answer is for account ${JSON.stringify(raw.accountSid)}, not ${accountSid}`;
  }
  if (typeof raw.maxAgeSeconds !== 'number' || !(raw.maxAgeSeconds >= 0)) {
    return 'the answer has no maxAgeSeconds';
  }
  const list = (section: unknown): boolean => section === undefined || (isObject(section) && Array.isArray(section.policies));
  if (!list(raw.recovery) || !list(raw.activity)) {
    return 'the answer lists its policies in an unknown shape';
  }
  return raw as unknown as OperatorConfig;
}

interface Cached {
  fetchedAt: number;
  config: OperatorConfig;
}

function readCache(deps: LoadDeps, key: string, accountSid: string): Cached | undefined {
  try {
    const raw = deps.storage?.getItem(key);
    if (!raw) return undefined;
    const parsed = JSON.parse(raw);
    const config = checkAnswer(parsed?.config, accountSid);
    if (typeof config === 'string' || typeof parsed.fetchedAt !== 'number') return undefined;
    return { fetchedAt: parsed.fetchedAt, config };
  } catch {
    return undefined; // storage refused (private mode) or held something else: ask the operator
  }
}

function writeCache(deps: LoadDeps, key: string, value: Cached | undefined): void {
  try {
    if (value) {
      deps.storage?.setItem(key, JSON.stringify(value));
    } else {
      deps.storage?.removeItem(key);
    }
  } catch (e) {
    deps.log.warn(`flex-operator: cannot cache the operator's configuration: ${(e as Error)?.message ?? e}`);
  }
}

const maxAgeMs = (c: OperatorConfig): number => Math.min(c.maxAgeSeconds, MAX_AGE_CAP_SECONDS) * 1000;

async function fetchWithTimeout(deps: LoadDeps, url: string, token: string): Promise<ConfigResponse> {
  const controller = typeof AbortController === 'function' ? new AbortController() : undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller?.abort();
      reject(new Error(`no answer within ${FETCH_TIMEOUT_MS / 1000} s`));
    }, FETCH_TIMEOUT_MS);
  });
  try {
    return await Promise.race([
      deps.fetch(url, { method: 'GET', headers: { Authorization: `Bearer ${token}` }, signal: controller?.signal }),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * loadOperatorConfig returns the operator's configuration for the account: from the cache while it
 * is younger than its max age, else from the operator; when the operator cannot be asked, from a
 * cache younger than STALE_LIMIT_MS. A refused token is never answered from the cache: the operator
 * said no, and the cache is cleared.
 */
export async function loadOperatorConfig(settings: PluginSettings, accountSid: string, token: string, deps: LoadDeps): Promise<LoadResult> {
  const key = cacheKey(settings.operatorUrl, accountSid);
  const cached = readCache(deps, key, accountSid);
  const age = cached ? deps.now() - cached.fetchedAt : Infinity;
  if (cached && age >= 0 && age < maxAgeMs(cached.config)) {
    return { kind: 'cached', config: cached.config, fetchedAt: cached.fetchedAt };
  }
  const url = configUrl(settings.operatorUrl, accountSid);
  let problem: string;
  try {
    const resp = await fetchWithTimeout(deps, url, token);
    if (resp.status === 401 || resp.status === 403) {
      writeCache(deps, key, undefined);
      return {
        kind: 'refused',
        message: `the operator at ${settings.operatorUrl} refused this agent's Flex token (HTTP ${resp.status}): it has no policy of account ${accountSid}, or the token is not valid`,
      };
    }
    if (!resp.ok) {
      problem = `HTTP ${resp.status}`;
    } else {
      const config = checkAnswer(await resp.json(), accountSid);
      if (typeof config !== 'string') {
        const fetchedAt = deps.now();
        writeCache(deps, key, { fetchedAt, config });
        return { kind: 'fresh', config, fetchedAt };
      }
      problem = config;
    }
  } catch (e) {
    problem = (e as Error)?.message ?? String(e);
  }
  const message = `cannot read the configuration from the operator (${url}): ${problem}`;
  if (cached && age >= 0 && age < STALE_LIMIT_MS) {
    deps.log.warn(`flex-operator: ${message}; using the one read ${Math.round(age / 60000)} min ago`);
    return { kind: 'stale', config: cached.config, fetchedAt: cached.fetchedAt };
  }
  return { kind: 'unreachable', message };
}

/**
 * resolveConfig merges the operator's answer and the local overrides into the shape readConfig
 * checks ({flexOperator: {recovery, activity}}); log receives what the merge had to decide.
 * A policy whose routes are not the ones this plugin builds is reported, as the operator and the
 * plugin then disagree on the contract and Twilio's callbacks would go nowhere.
 */
export function resolveConfig(config: OperatorConfig, settings: PluginSettings, log: Logger): { resolved: unknown; errors: string[] } {
  const errors: string[] = [];
  const top: Record<string, unknown> = {};
  const { overrides } = settings;
  if (overrides.recovery && config.recovery && config.recovery.policies.length > 0) {
    const policies = config.recovery.policies.map((p) => {
      const mine = { namespace: p.namespace, name: p.name, publicUrl: p.publicUrl, workflowSids: p.workflowSids };
      const built = { conference: conferenceCallbackUrl(mine), graceful: gracefulUrl(mine) };
      (['conference', 'graceful'] as const)
        .filter((route) => p.routes?.[route] !== built[route])
        .forEach((route) =>
          errors.push(
            `policy ${p.namespace}/${p.name}: the operator's ${route} route is ${JSON.stringify(p.routes?.[route])}, the plugin would use ${built[route]} (deploy the plugin release that matches the operator)`,
          ),
        );
      return mine;
    });
    top.recovery = {
      policies,
      gracefulTimeoutMs: overrides.gracefulTimeoutMs ?? config.recovery.gracefulTimeoutMs,
      ...(overrides.autoAccept === undefined ? {} : { autoAccept: overrides.autoAccept }),
    };
  }
  const activity = config.activity?.policies ?? [];
  if (overrides.activity && activity.length > 0) {
    // One browser serves one worker, and the plugin cannot tell which policy's worker expression
    // selects it: it refuses every policy's system activities, and takes the first policy's
    // attributes (they are the same unless the policies were written to differ).
    const [first] = activity;
    activity
      .filter((p) => p.pendingActivityAttribute !== first.pendingActivityAttribute || p.extendedWrapupAttribute !== first.extendedWrapupAttribute)
      .forEach((p) =>
        log.warn(
          `flex-operator: WorkerActivityPolicies ${first.namespace}/${first.name} and ${p.namespace}/${p.name} name different attributes; the plugin uses the first's`,
        ),
      );
    top.activity = {
      pendingActivityAttribute: first.pendingActivityAttribute,
      extendedWrapupAttribute: first.extendedWrapupAttribute,
      systemActivities: Array.from(new Set(activity.flatMap((p) => p.systemActivities))),
      activityChangeWhileBusy: activity.some((p) => p.activityChangeWhileBusy === 'Defer') ? 'Defer' : 'Allow',
    };
  }
  if (Object.keys(top).length === 0 && errors.length === 0) {
    errors.push(
      `the operator lists no policy of account ${config.accountSid} that this plugin uses` +
        (overrides.recovery && overrides.activity ? '' : ' (custom_data.flexOperator turns some off)'),
    );
  }
  return { resolved: { [CONFIG_KEY]: top }, errors };
}
