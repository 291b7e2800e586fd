// How the plugin tells the operator's recovery tasks from customers' tasks. This is the one place
// that knows the operator's task marker (internal/recovery MarkerAttribute; the webhook server
// recognises tasks the same way): a ping or reconnect task carries
// flexOperatorRecovery = {role: 'ping' | 'reconnect', conferenceSid: 'CF…', disconnectedCallSid: 'CA…'},
// written whole by the operator for each task it builds. The seed's isReconnect and
// disconnectedConferenceSid are not used to tell a role: they are copied along with every other
// attribute when a call drops a second time (the second ping is built from the first reconnect
// task) or when Flex copies a task, so a customer's task can carry them.

export type TaskRole = 'ping' | 'reconnect' | 'customer';

type Attributes = Record<string, unknown> | undefined | null;

const MARKER = 'flexOperatorRecovery';
const CONFERENCE_SID = /^CF[0-9a-f]{32}$/;

interface Marker {
  role: 'ping' | 'reconnect';
  conferenceSid: string;
}

const marker = (a: Attributes): Marker | undefined => {
  const m = a?.[MARKER] as Record<string, unknown> | undefined;
  if (typeof m !== 'object' || m === null) {
    return undefined;
  }
  const { role, conferenceSid } = m;
  if ((role !== 'ping' && role !== 'reconnect') || typeof conferenceSid !== 'string' || !CONFERENCE_SID.test(conferenceSid)) {
    return undefined;
  }
  return { role, conferenceSid };
};

/** taskRole says whether task attributes are those of a Recovery Ping task, a reconnect task or neither. */
export function taskRole(attributes: Attributes): TaskRole {
  return marker(attributes)?.role ?? 'customer';
}

/** The conference a ping or reconnect task recovers (for the agent's notice), if any. */
export function recoveredConference(attributes: Attributes): string | undefined {
  return marker(attributes)?.conferenceSid;
}
