// "Pending activity: Break" in Flex's header while the operator holds a deferred activity.
import React, { useEffect, useState } from 'react';

import { PendingActivity } from './pending';

const style: React.CSSProperties = {
  display: 'flex',
  alignItems: 'center',
  marginRight: '0.75rem',
  color: 'inherit',
  fontSize: '0.75rem',
  lineHeight: 1.25,
};

export function PendingActivityLabel({ pending }: { pending: PendingActivity }): JSX.Element | null {
  const [name, setName] = useState(pending.current());
  useEffect(() => {
    setName(pending.current());
    return pending.subscribe(setName);
  }, [pending]);
  if (name === undefined) {
    return null;
  }
  return (
    <div style={style} data-testid="flex-operator-pending-activity">
      Pending activity: {name}
    </div>
  );
}
