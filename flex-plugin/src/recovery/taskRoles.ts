// How the plugin tells the operator's recovery tasks from customers' tasks. This is the one place
// that knows the operator's task attribute markers (internal/recovery: PingTaskAttributes,
// ReconnectTaskAttributes; webhookserver recognises them the same way): both tasks carry
// disconnectedConferenceSid, the conference they recover; the reconnect task also has isReconnect
// true and, when the agent answered the ping, targetWorkerSid.

export type TaskRole = 'ping' | 'reconnect' | 'customer';

type Attributes = Record<string, unknown> | undefined | null;

const hasConference = (a: Attributes): boolean =>
  typeof a?.disconnectedConferenceSid === 'string' && a.disconnectedConferenceSid !== '';

/** taskRole says whether task attributes are those of a Recovery Ping task, a reconnect task or neither. */
export function taskRole(attributes: Attributes): TaskRole {
  if (!hasConference(attributes)) {
    return 'customer';
  }
  return attributes?.isReconnect === true ? 'reconnect' : 'ping';
}

/** The conference a ping or reconnect task recovers (for the agent's notice), if any. */
export function recoveredConference(attributes: Attributes): string | undefined {
  return hasConference(attributes) ? (attributes?.disconnectedConferenceSid as string) : undefined;
}
