// The "Extend wrap-up" button of a wrapping task's header.
import React, { useState } from 'react';

import { ActionsApi } from '../flexApi';
import { EXTEND_WRAPUP_ACTION, isExtended } from './extendWrapup';

interface Props {
  task?: any;
  actions: ActionsApi;
  attribute: string;
}

export function ExtendWrapupButton({ task, actions, attribute }: Props): JSX.Element | null {
  const [busy, setBusy] = useState(false);
  if (!task || task.status !== 'wrapping') {
    return null;
  }
  const extended = isExtended(task, attribute);
  const onClick = (): void => {
    setBusy(true);
    // A failure is shown by the action's own notice.
    actions
      .invokeAction(EXTEND_WRAPUP_ACTION, { task })
      .catch(() => undefined)
      .finally(() => setBusy(false));
  };
  return (
    <button type="button" disabled={busy || extended} onClick={onClick} data-testid="flex-operator-extend-wrapup">
      {extended ? 'Wrap-up extended' : 'Extend wrap-up'}
    </button>
  );
}
