// Graceful hang-up and cold transfer: tell the operator, just before the agent's leg leaves on
// purpose, that the leave is not an outage. The mark is best effort with a bounded wait, retried
// within it: whatever the operator answers (or not), the hang-up or transfer goes on, and the agent
// is told when the mark did not count.
import { PolicyConfig } from '../config';
import { FlexApi, Logger, ManagerLike } from '../flexApi';
import { NoticeId } from '../notifications';
import { gracefulRequest, gracefulUrl } from '../routes';
import { isVoiceTask, PolicyLookup } from './policies';

/** What the plugin needs of window.fetch. */
export type Fetch = (url: string, init: RequestInit) => Promise<Pick<Response, 'ok' | 'status'>>;

/**
 * How a mark ended: marked; nothing to mark (404: the call is not protected or already over; 409:
 * no leg of this worker); refused (the operator will not take it: 400, 401, 403…); failed (no
 * answer, or 429/5xx, on every attempt); timeout (the bound ran out first).
 */
export type MarkOutcome = 'marked' | 'nothing' | 'refused' | 'failed' | 'timeout';

export interface GracefulMarker {
  /** mark resolves within the timeout, never rejects. */
  mark(policy: PolicyConfig, token: string, conferenceSid: string, callSid?: string): Promise<MarkOutcome>;
}

/**
 * Waits before the next attempt of a mark that got no answer, a 429 or a 5xx. Attempts go on only
 * while the bound allows: a reverse proxy restarting, a replica draining or a lost packet costs a
 * retry, not the mark.
 */
export const RETRY_DELAYS_MS = [100, 200, 400];

export function newGracefulMarker(fetchFn: Fetch, timeoutMs: number, log: Logger): GracefulMarker {
  return {
    async mark(policy, token, conferenceSid, callSid) {
      const body = gracefulRequest(conferenceSid, callSid);
      if (!body) {
        log.warn(`flex-operator: no graceful mark: "${conferenceSid}" is not a conference SID`);
        return 'failed';
      }
      const abort = typeof AbortController === 'function' ? new AbortController() : undefined;
      let expired = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<MarkOutcome>((resolve) => {
        timer = setTimeout(() => {
          expired = true;
          abort?.abort();
          resolve('timeout');
        }, timeoutMs);
      });
      const attempt = async (): Promise<MarkOutcome | 'retry'> => {
        try {
          const resp = await fetchFn(gracefulUrl(policy), {
            method: 'POST',
            headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
            body: JSON.stringify(body),
            signal: abort?.signal,
          });
          if (resp.ok) {
            return 'marked';
          }
          // 404 and 409 are answers, not failures: there is nothing to mark.
          if (resp.status === 404 || resp.status === 409) {
            return 'nothing';
          }
          if (resp.status === 429 || resp.status >= 500) {
            log.warn(`flex-operator: graceful mark of ${conferenceSid}: the operator answered ${resp.status}`);
            return 'retry';
          }
          log.warn(`flex-operator: the operator refused the graceful mark of ${conferenceSid} (${resp.status})`);
          return 'refused';
        } catch (e) {
          if (!expired) {
            log.warn('flex-operator: graceful mark failed:', e);
          }
          return 'retry';
        }
      };
      const request = (async (): Promise<MarkOutcome> => {
        for (let i = 0; ; i++) {
          const outcome = await attempt();
          if (outcome !== 'retry') {
            return outcome;
          }
          if (expired || i >= RETRY_DELAYS_MS.length) {
            return 'failed';
          }
          await new Promise((resolve) => setTimeout(resolve, RETRY_DELAYS_MS[i]));
          if (expired) {
            return 'failed';
          }
        }
      })();
      const outcome = await Promise.race([request, timeout]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        log.warn(`flex-operator: graceful mark of ${conferenceSid} got no answer within ${timeoutMs} ms; going on`);
      } else {
        log.debug(`flex-operator: graceful mark of ${conferenceSid}: ${outcome}`);
      }
      return outcome;
    },
  };
}

/** Why a mark that did not count failed, in words for the agent. */
export function markFailure(outcome: MarkOutcome, timeoutMs: number): string | undefined {
  switch (outcome) {
    case 'timeout':
      return `no answer within ${timeoutMs} ms`;
    case 'failed':
      return 'the operator could not be reached';
    case 'refused':
      return 'the operator refused the request';
  }
  return undefined;
}

/** The conference of a call task and this agent's leg in it, from what Flex knows of the task. */
export function conferenceAndLeg(task: any): { conferenceSid?: string; callSid?: string } {
  const conference = task?.conference;
  const conferenceSid: string | undefined = conference?.conferenceSid || task?.attributes?.conference?.sid;
  const mine = (conference?.participants ?? []).filter((p: any) => p?.isMyself && p?.callSid);
  const live = mine.find((p: any) => p.status === 'joined') ?? mine[0];
  return { conferenceSid, callSid: live?.callSid };
}

/**
 * installGracefulMarks marks the agent's leg graceful before Flex hangs up a protected call or
 * cold-transfers it. Flex waits for "before" listeners, so the mark's own bound is what the agent
 * may wait at most (failed attempts are retried within it); a mark that does not count is logged,
 * the agent is warned, and the action goes on.
 */
export function installGracefulMarks(
  flex: FlexApi,
  manager: ManagerLike,
  policyFor: PolicyLookup,
  marker: GracefulMarker,
  timeoutMs: number,
  log: Logger,
): void {
  const markTask = async (payload: any): Promise<void> => {
    try {
      const task = payload?.task;
      if (!isVoiceTask(task)) {
        return;
      }
      const policy = policyFor(task.workflowSid);
      if (!policy) {
        return;
      }
      const { conferenceSid, callSid } = conferenceAndLeg(task);
      const token = manager.user?.token;
      if (!conferenceSid || !token) {
        log.warn(`flex-operator: cannot mark task ${task.sid} graceful: no ${conferenceSid ? 'Flex token' : 'conference'}`);
        return;
      }
      const why = markFailure(await marker.mark(policy, token, conferenceSid, callSid), timeoutMs);
      if (why) {
        // The hang-up goes on, but the operator will take it for a dropped call: say so.
        flex.Notifications.showNotification(NoticeId.GracefulMarkLost, { reason: why });
      }
    } catch (e) {
      log.warn('flex-operator: graceful mark skipped:', e);
    }
  };
  flex.Actions.addListener('beforeHangupCall', markTask);
  flex.Actions.addListener('beforeTransferTask', async (payload) => {
    if (String(payload?.options?.mode ?? '').toUpperCase() === 'COLD') {
      await markTask(payload);
    }
  });
}
