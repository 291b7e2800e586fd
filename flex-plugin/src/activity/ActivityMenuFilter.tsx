// A <style> element in the header that hides the system activities in Flex's activity menu,
// following the activities in Flex's store.
import React, { useEffect, useState } from 'react';

import { ManagerLike } from '../flexApi';
import { activityMenuCss, IsSystemActivity, storeActivities } from './systemActivities';

export function ActivityMenuFilter({ manager, isSystem }: { manager: ManagerLike; isSystem: IsSystemActivity }): JSX.Element {
  const compute = (): string => activityMenuCss(storeActivities(manager), isSystem);
  const [css, setCss] = useState(compute);
  useEffect(() => {
    setCss(compute());
    return manager.store.subscribe(() => setCss(compute()));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [manager, isSystem]);
  return <style data-testid="flex-operator-activity-menu-filter">{css}</style>;
}
