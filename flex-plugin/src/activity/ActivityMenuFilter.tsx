// A header component with nothing to show: while mounted it hides the system activities in Flex's
// activity menu (activityMenu.ts says how, and why only as best effort).
import { useEffect } from 'react';

import { watchActivityMenu } from './activityMenu';
import { IsSystemActivity } from './systemActivities';

export function ActivityMenuFilter({ isSystem, root }: { isSystem: IsSystemActivity; root?: HTMLElement }): null {
  useEffect(() => {
    const target = root ?? (typeof document === 'undefined' ? undefined : document.body);
    return target ? watchActivityMenu(target, isSystem) : undefined;
  }, [isSystem, root]);
  return null;
}
