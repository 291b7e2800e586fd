// Hiding the system activities in Flex's activity menu. Flex UI 2.x documents no way to filter that
// menu (its Activity component is private, and renders every activity of the workspace but
// "Reserved"), so this is best effort, built to fail harmlessly: it hides only menu items whose label
// is exactly a system activity's name, inside the element Flex 2.17 marks data-testid="activity-menu".
// If Flex changes that markup or translates the labels, nothing is hidden (never a wrong entry), and
// the SetActivity guard still refuses a system activity with a notice.
import { IsSystemActivity } from './systemActivities';

/** The attribute Flex 2.17 puts on its activity menu (undocumented). */
export const ACTIVITY_MENU_SELECTOR = '[data-testid="activity-menu"]';

/** The attribute the plugin marks the entries it hid with. */
export const HIDDEN_MARK = 'data-flex-operator-hidden';

/**
 * hideSystemEntries hides, in every activity menu under root, the items whose label is a system
 * activity's name, and shows again those it hid that no longer are; it returns how many are hidden.
 */
export function hideSystemEntries(root: ParentNode, isSystem: IsSystemActivity): number {
  let hidden = 0;
  root.querySelectorAll(ACTIVITY_MENU_SELECTOR).forEach((menu) =>
    menu.querySelectorAll<HTMLElement>('[role="menuitem"]').forEach((item) => {
      const label = item.textContent?.trim();
      if (isSystem(label)) {
        if (!item.hasAttribute(HIDDEN_MARK)) {
          item.setAttribute(HIDDEN_MARK, '');
          item.style.display = 'none';
        }
        hidden += 1;
      } else if (item.hasAttribute(HIDDEN_MARK)) {
        item.removeAttribute(HIDDEN_MARK);
        item.style.display = '';
      }
    }),
  );
  return hidden;
}

/**
 * watchActivityMenu hides the system entries whenever the page changes (Flex renders the menu when
 * it opens); it returns the function that stops watching.
 */
export function watchActivityMenu(root: HTMLElement, isSystem: IsSystemActivity): () => void {
  const apply = () => {
    try {
      hideSystemEntries(root, isSystem);
    } catch {
      // A DOM this code does not expect: leave the menu as Flex drew it.
    }
  };
  apply();
  if (typeof MutationObserver !== 'function') {
    return () => undefined;
  }
  const observer = new MutationObserver((mutations) => {
    if (mutations.some((m) => m.addedNodes.length > 0 || m.type === 'characterData')) {
      apply();
    }
  });
  observer.observe(root, { childList: true, subtree: true, characterData: true });
  return () => observer.disconnect();
}
