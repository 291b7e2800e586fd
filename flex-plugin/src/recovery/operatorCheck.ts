// The start-up check: can this browser reach the operator's /flex/ routes, and do they accept the
// agent's Flex token? If not, every graceful mark will be lost and every deliberate hang-up taken
// for a dropped call, so the agent is warned at once rather than after a customer is affected.
import { PolicyConfig } from '../config';
import { FlexApi, Logger } from '../flexApi';
import { NoticeId } from '../notifications';
import { checkUrl } from '../routes';
import { Fetch } from './graceful';

/** How long the check waits for the operator before it calls it unreachable. */
export const CHECK_TIMEOUT_MS = 5000;

/** Why the policy's routes are not usable, in words for the agent; undefined when they are. */
export type CheckResult = { policy: PolicyConfig; problem?: string };

async function checkPolicy(fetchFn: Fetch, policy: PolicyConfig, token: string): Promise<CheckResult> {
  if (!token) {
    return { policy, problem: 'Flex gave no token to present' };
  }
  const abort = typeof AbortController === 'function' ? new AbortController() : undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => {
      abort?.abort();
      resolve({ policy, problem: `no answer from ${policy.publicUrl} within ${CHECK_TIMEOUT_MS / 1000} s` });
    }, CHECK_TIMEOUT_MS);
  });
  const request = (async (): Promise<CheckResult> => {
    try {
      const resp = await fetchFn(checkUrl(policy), {
        method: 'GET',
        headers: { Authorization: `Bearer ${token}` },
        signal: abort?.signal,
      });
      if (resp.ok) {
        return { policy };
      }
      if (resp.status === 401 || resp.status === 403) {
        return { policy, problem: `it refuses your Flex token (${resp.status})` };
      }
      return { policy, problem: `${policy.publicUrl} answered ${resp.status}` };
    } catch {
      return { policy, problem: `no answer from ${policy.publicUrl}` };
    }
  })();
  const result = await Promise.race([request, timeout]);
  clearTimeout(timer);
  return result;
}

/**
 * checkOperator checks each policy's /flex/ routes once and warns the agent, with one persistent
 * notice, when any of them cannot be used. It never rejects.
 */
export async function checkOperator(
  flex: FlexApi,
  policies: PolicyConfig[],
  token: string,
  fetchFn: Fetch,
  log: Logger,
): Promise<CheckResult[]> {
  const results = await Promise.all(policies.map((p) => checkPolicy(fetchFn, p, token).catch(() => ({ policy: p, problem: 'the check failed' }))));
  const failed = results.filter((r) => r.problem);
  failed.forEach((r) =>
    log.warn(`flex-operator: the /flex/ routes of ${r.policy.namespace}/${r.policy.name} are not usable: ${r.problem}`),
  );
  if (failed.length > 0) {
    try {
      flex.Notifications.showNotification(NoticeId.OperatorUnreachable, { reason: failed[0].problem });
    } catch (e) {
      log.warn('flex-operator: could not show the warning:', e);
    }
  }
  return results;
}
