// The plugin's own settings: Flex's ui_attributes.custom_data.flexOperator. They name the operator
// and hold optional local overrides; everything else (policies, protected workflows, routes,
// timeouts) is read from the operator (operatorConfig.ts), so nothing is configured twice.
import { checkPublicUrl, CONFIG_KEY } from './config';

/** Local overrides of what the operator answers. */
export interface Overrides {
  /** Install the conference recovery behaviours (default true when the operator lists policies). */
  recovery: boolean;
  /** Install the activity behaviours (default true when the operator lists policies). */
  activity: boolean;
  /** Replaces the operator's bound on the wait for a graceful mark. */
  gracefulTimeoutMs?: number;
  /** Accept Recovery Ping and reconnect tasks without a click (default true). */
  autoAccept?: boolean;
}

export interface PluginSettings {
  /** The operator's public URL, which serves GET /flex/config. */
  operatorUrl: string;
  /** http:// URLs are accepted (local development only). */
  allowInsecureHttp: boolean;
  overrides: Overrides;
}

export type SettingsResult =
  | { kind: 'ok'; settings: PluginSettings }
  | { kind: 'disabled' }
  | { kind: 'invalid'; errors: string[] };

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

const KNOWN = ['enabled', 'operatorUrl', 'allowInsecureHttp', 'recovery', 'activity'];

// Keys of the former hand-written configuration, now the operator's to say.
const FROM_OPERATOR: Record<string, string> = {
  publicUrl: 'the public URL of each policy',
  namespace: 'the namespace of each policy',
};

const MIN_GRACEFUL_TIMEOUT_MS = 100;
const MAX_GRACEFUL_TIMEOUT_MS = 5000;

/**
 * readSettings checks custom_data.flexOperator: the operator's URL (https, unless allowInsecureHttp),
 * "enabled", and the overrides: "recovery" and "activity" each false (off) or an object
 * ({gracefulTimeoutMs, autoAccept} for recovery; {} for activity).
 */
export function readSettings(customData: unknown): SettingsResult {
  const path = `custom_data.${CONFIG_KEY}`;
  const top = isObject(customData) ? customData[CONFIG_KEY] : undefined;
  if (top === undefined) {
    return { kind: 'invalid', errors: [`${path} is missing from the Flex configuration (ui_attributes.custom_data)`] };
  }
  if (!isObject(top)) {
    return { kind: 'invalid', errors: [`${path} must be an object`] };
  }
  const errors: string[] = [];
  const fail = (p: string, msg: string) => errors.push(`${p} ${msg}`);
  Object.keys(top)
    .filter((k) => !KNOWN.includes(k))
    .forEach((k) =>
      k in FROM_OPERATOR
        ? fail(`${path}.${k}`, `is no longer set here: the plugin reads ${FROM_OPERATOR[k]} from the operator; set ${path}.operatorUrl only`)
        : fail(`${path}.${k}`, `is not a known setting (known: ${KNOWN.join(', ')})`),
    );
  const bool = (o: Obj, key: string, p: string, def: boolean): boolean => {
    const v = o[key];
    if (v === undefined) return def;
    if (typeof v !== 'boolean') {
      fail(`${p}.${key}`, 'must be true or false');
      return def;
    }
    return v;
  };
  if (!bool(top, 'enabled', path, true)) {
    return errors.length > 0 ? { kind: 'invalid', errors } : { kind: 'disabled' };
  }
  const allowInsecureHttp = bool(top, 'allowInsecureHttp', path, false);
  let operatorUrl = '';
  if (typeof top.operatorUrl !== 'string' || top.operatorUrl === '') {
    fail(`${path}.operatorUrl`, "must be the operator's public URL (its --webhook-public-url), for example https://flex-operator.example.com");
  } else {
    const r = checkPublicUrl(top.operatorUrl, allowInsecureHttp);
    if ('error' in r) {
      fail(`${path}.operatorUrl`, r.error);
    } else {
      operatorUrl = r.url;
    }
  }
  const overrides: Overrides = { recovery: true, activity: true };
  const recovery = top.recovery;
  if (recovery === false) {
    overrides.recovery = false;
  } else if (isObject(recovery)) {
    const rp = `${path}.recovery`;
    Object.keys(recovery)
      .filter((k) => k !== 'gracefulTimeoutMs' && k !== 'autoAccept')
      .forEach((k) =>
        fail(
          `${rp}.${k}`,
          k === 'policies'
            ? 'is no longer set here: the plugin reads the policies and their protected workflows from the operator'
            : 'is not a known setting (known: gracefulTimeoutMs, autoAccept)',
        ),
      );
    const t = recovery.gracefulTimeoutMs;
    if (t !== undefined) {
      if (typeof t !== 'number' || !Number.isInteger(t) || t < MIN_GRACEFUL_TIMEOUT_MS || t > MAX_GRACEFUL_TIMEOUT_MS) {
        fail(`${rp}.gracefulTimeoutMs`, `must be a whole number of milliseconds from ${MIN_GRACEFUL_TIMEOUT_MS} to ${MAX_GRACEFUL_TIMEOUT_MS}`);
      } else {
        overrides.gracefulTimeoutMs = t;
      }
    }
    if (recovery.autoAccept !== undefined) {
      overrides.autoAccept = bool(recovery, 'autoAccept', rp, true);
    }
  } else if (recovery !== undefined) {
    fail(`${path}.recovery`, 'must be false (off) or an object of overrides ({"gracefulTimeoutMs", "autoAccept"})');
  }
  const activity = top.activity;
  if (activity === false) {
    overrides.activity = false;
  } else if (isObject(activity)) {
    Object.keys(activity).forEach((k) =>
      fail(`${path}.activity.${k}`, 'is no longer set here: the plugin reads the WorkerActivityPolicy settings from the operator'),
    );
  } else if (activity !== undefined && activity !== true) {
    fail(`${path}.activity`, 'must be true or false');
  }
  if (errors.length > 0) {
    return { kind: 'invalid', errors };
  }
  return { kind: 'ok', settings: { operatorUrl, allowInsecureHttp, overrides } };
}
