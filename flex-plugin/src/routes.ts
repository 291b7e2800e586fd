// The operator's routes the plugin uses, as the webhookserver package defines them
// (PatternConference, PatternGraceful, GracefulRequest). contract/operator-routes.json holds the
// same shapes; both the Jest suite and a Go test of webhookserver read it.
import { PolicyConfig } from './config';

/**
 * The conference events the operator needs: start and end bound the call, join and leave are the
 * legs (a leave is what starts a recovery), modify carries Flex's endConferenceOnExit changes and
 * announcement the end of the "connection interrupted" message.
 */
export const CONFERENCE_CALLBACK_EVENTS = ['start', 'end', 'join', 'leave', 'modify', 'announcement'];

/**
 * conferenceCallbackUrl is POST /twilio/{namespace}/{policy}/conference on the policy's public URL.
 * Twilio signs exactly this URL and the operator checks the signature against its own, so it is
 * built from the configured strings with nothing escaped or rewritten (the names are Kubernetes
 * names, which need no escaping).
 */
export function conferenceCallbackUrl(p: PolicyConfig): string {
  return `${p.publicUrl}/twilio/${p.namespace}/${p.name}/conference`;
}

/** gracefulUrl is POST /flex/{namespace}/{policy}/graceful. */
export function gracefulUrl(p: PolicyConfig): string {
  return `${p.publicUrl}/flex/${p.namespace}/${p.name}/graceful`;
}

/**
 * checkUrl is GET /flex/{namespace}/{policy}/check: the start-up check that the /flex/ routes are
 * reachable and accept the agent's token (200), which is what makes a graceful mark count.
 */
export function checkUrl(p: PolicyConfig): string {
  return `${p.publicUrl}/flex/${p.namespace}/${p.name}/check`;
}

/** GracefulRequest is the body of a graceful mark (webhookserver.GracefulRequest). */
export interface GracefulRequest {
  /** The conference (CF…) of the call. */
  conferenceSid: string;
  /** The agent's leg (CA…); without it the operator marks every connected leg of the token's worker. */
  callSid?: string;
}

const CONFERENCE_SID = /^CF[0-9a-f]{32}$/;
const CALL_SID = /^CA[0-9a-f]{32}$/;

/** gracefulRequest builds the body, leaving out a call SID the operator would refuse. */
export function gracefulRequest(conferenceSid: string, callSid?: string): GracefulRequest | undefined {
  if (!CONFERENCE_SID.test(conferenceSid)) {
    return undefined;
  }
  return callSid && CALL_SID.test(callSid) ? { conferenceSid, callSid } : { conferenceSid };
}
