// The notices about the plugin's own configuration: the agent must see when the operator's
// configuration cannot be had, since their calls are then not protected.
import { FlexApi } from './flexApi';

export enum ConfigNoticeId {
  /** The operator could not be reached or refused the token, and nothing usable was cached. */
  Unavailable = 'FlexOperatorConfigUnavailable',
  /** The operator could not be reached; a configuration read earlier is in use. */
  Stale = 'FlexOperatorConfigStale',
}

export function registerConfigNotices(flex: FlexApi): void {
  flex.Notifications.registerNotification({
    id: ConfigNoticeId.Unavailable,
    content:
      'Call recovery is OFF: flex-operator\'s configuration cannot be read ({{message}}). A dropped call will not be recovered; tell your administrator.',
    type: flex.NotificationType.error,
    // Stays until the agent closes it: the state lasts until the page is reloaded.
    timeout: 0,
    closeButton: true,
  });
  flex.Notifications.registerNotification({
    id: ConfigNoticeId.Stale,
    content:
      'flex-operator cannot be reached: using its configuration from {{minutes}} min ago. Recent policy changes may be missing.',
    type: flex.NotificationType.warning,
    timeout: 0,
    closeButton: true,
  });
}
