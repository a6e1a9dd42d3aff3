import { type Route, setParam } from '../route.js';
import { STATE_LABEL } from '../store.js';

/** Every artefact state and its label, for a state filter. */
const STATE_OPTIONS: ReadonlyArray<readonly [string, string]> = Object.entries(STATE_LABEL);

/**
 * A toolbar's labelled select bound to one route parameter: choosing sets it (a new history
 * entry, so Back undoes a filter). `all` offers the empty value first, labelled "all".
 */
export function ParamSelect({
  route,
  param,
  label,
  value,
  options,
  all = true,
}: {
  route: Route;
  param: string;
  label: string;
  value: string;
  options: ReadonlyArray<string | readonly [value: string, label: string]>;
  all?: boolean;
}) {
  return (
    <label>
      {label}{' '}
      <select value={value} onChange={(e) => setParam(route, param, e.target.value)}>
        {all && <option value="">all</option>}
        {options.map((o) => {
          const [v, text] = typeof o === 'string' ? [o, o] : o;
          return (
            <option key={v} value={v}>
              {text}
            </option>
          );
        })}
      </select>
    </label>
  );
}

/** The toolbar's path search, bound to the route's `q`. */
export function PathSearch({ route, value }: { route: Route; value: string }) {
  return (
    <label>
      Search{' '}
      <input
        type="search"
        value={value}
        placeholder="path contains…"
        onChange={(e) => setParam(route, 'q', e.target.value)}
      />
    </label>
  );
}

/** The toolbar's artefact state filter, bound to the route's `state`. */
export function StateSelect({ route, value }: { route: Route; value: string }) {
  return (
    <ParamSelect route={route} param="state" label="State" value={value} options={STATE_OPTIONS} />
  );
}
