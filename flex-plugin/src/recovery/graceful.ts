// Graceful hang-up and cold transfer: tell the operator, just before the agent's leg leaves on
// purpose, that the leave is not an outage. The mark is best effort with a bounded wait: whatever
// the operator answers (or not), the hang-up or transfer goes on.
import { PolicyConfig } from '../config';
import { FlexApi, Logger, ManagerLike } from '../flexApi';
import { gracefulRequest, gracefulUrl } from '../routes';
import { isVoiceTask, PolicyLookup } from './policies';

/** What the plugin needs of window.fetch. */
export type Fetch = (url: string, init: RequestInit) => Promise<Pick<Response, 'ok' | 'status'>>;

export type MarkOutcome = 'marked' | 'refused' | 'failed' | 'timeout';

export interface GracefulMarker {
  /** mark resolves within the timeout, never rejects. */
  mark(policy: PolicyConfig, token: string, conferenceSid: string, callSid?: string): Promise<MarkOutcome>;
}

export function newGracefulMarker(fetchFn: Fetch, timeoutMs: number, log: Logger): GracefulMarker {
  return {
    async mark(policy, token, conferenceSid, callSid) {
      const body = gracefulRequest(conferenceSid, callSid);
      if (!body) {
        log.warn(`flex-operator: no graceful mark: "${conferenceSid}" is not a conference SID`);
        return 'failed';
      }
      const abort = typeof AbortController === 'function' ? new AbortController() : undefined;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<MarkOutcome>((resolve) => {
        timer = setTimeout(() => {
          abort?.abort();
          resolve('timeout');
        }, timeoutMs);
      });
      const request = (async (): Promise<MarkOutcome> => {
        try {
          const resp = await fetchFn(gracefulUrl(policy), {
            method: 'POST',
            headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
            body: JSON.stringify(body),
            signal: abort?.signal,
          });
          // 404 (no recovery: the call is not protected, or already over) and 409 (no leg of
          // this worker) are answers, not failures: there is nothing to mark.
          return resp.ok ? 'marked' : 'refused';
        } catch (e) {
          log.warn('flex-operator: graceful mark failed:', e);
          return 'failed';
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
 * may wait at most; a failed or slow mark is logged and the action goes on.
 */
export function installGracefulMarks(
  flex: FlexApi,
  manager: ManagerLike,
  policyFor: PolicyLookup,
  marker: GracefulMarker,
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
      await marker.mark(policy, token, conferenceSid, callSid);
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
