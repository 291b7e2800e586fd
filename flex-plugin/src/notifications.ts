// The notices the plugin shows the agent. Contents are Flex templates filled from the context given
// to showNotification.
import { FlexApi } from './flexApi';

export enum NoticeId {
  /** A Recovery Ping task was accepted for the agent after their call dropped. */
  PingAccepted = 'FlexOperatorPingAccepted',
  /** A reconnect task (the customer coming back) was accepted for the agent. */
  ReconnectAccepted = 'FlexOperatorReconnectAccepted',
  /** The operator deferred the agent's (or a supervisor's) activity change until the tasks are done. */
  ActivityDeferred = 'FlexOperatorActivityDeferred',
  /** A supervisor changed a busy agent's activity: it applies when their tasks are done. */
  SupervisorActivityDeferred = 'FlexOperatorSupervisorActivityDeferred',
  /** The agent picked a system activity, which only the operator sets. */
  SystemActivityRefused = 'FlexOperatorSystemActivityRefused',
  /** Wrap-up was extended. */
  WrapupExtended = 'FlexOperatorWrapupExtended',
  /** Extending wrap-up failed. */
  WrapupExtendFailed = 'FlexOperatorWrapupExtendFailed',
  /** At start, the operator's /flex/ routes could not be reached or refused the agent's token. */
  OperatorUnreachable = 'FlexOperatorOperatorUnreachable',
  /** A deliberate hang-up or cold transfer could not be reported to the operator. */
  GracefulMarkLost = 'FlexOperatorGracefulMarkLost',
}

export function registerNotices(flex: FlexApi): void {
  const { information, warning, error } = flex.NotificationType;
  const notices: Array<[NoticeId, string, unknown]> = [
    [NoticeId.PingAccepted, 'Your call dropped. Reconnecting you to the customer…', information],
    [NoticeId.ReconnectAccepted, 'Reconnected: the customer is back on your call.', information],
    [NoticeId.ActivityDeferred, 'You will be set to "{{activityName}}" when your tasks are done.', information],
    [
      NoticeId.SupervisorActivityDeferred,
      'The agent is busy: they will be set to "{{activityName}}" when their tasks are done.',
      information,
    ],
    [NoticeId.SystemActivityRefused, '"{{activityName}}" is set automatically; pick another activity.', warning],
    [NoticeId.WrapupExtended, 'Wrap-up extended.', information],
    [NoticeId.WrapupExtendFailed, 'Could not extend wrap-up: {{message}}', error],
  ];
  notices.forEach(([id, content, type]) =>
    flex.Notifications.registerNotification({ id, content, type, timeout: 5000, closeButton: true }),
  );
  // These two stay until the agent closes them: a hang-up that is not reported keeps the customer
  // on the line and brings them back to the agent, which the agent and a supervisor must know.
  flex.Notifications.registerNotification({
    id: NoticeId.OperatorUnreachable,
    content:
      'flex-operator cannot be reached ({{reason}}). If you hang up, your customer may be kept on the line and offered back to you: tell your supervisor.',
    type: warning,
    timeout: 0,
    closeButton: true,
  });
  flex.Notifications.registerNotification({
    id: NoticeId.GracefulMarkLost,
    content:
      'Your hang-up could not be reported to flex-operator ({{reason}}): the customer may be kept on the line and offered back to you.',
    type: error,
    timeout: 0,
    closeButton: true,
  });
}
