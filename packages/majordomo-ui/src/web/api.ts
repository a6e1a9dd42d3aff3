// The REST client: every call carries the token in the Authorization header, never in a URL.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function errorOf(res: Response): Promise<ApiError> {
  let code = `HTTP_${res.status}`;
  let message = res.statusText || `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.code) code = body.error.code;
    if (body.error?.message) message = body.error.message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(res.status, code, message);
}

export class Api {
  /** Called with a 401, so the page can ask for a token again. */
  onUnauthorized: (err: ApiError) => void = () => {};

  constructor(readonly token: string) {}

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Bearer ${this.token}`, ...extra };
  }

  async #call(method: string, path: string, body?: unknown): Promise<Response> {
    const res = await fetch(path, {
      method,
      headers: this.headers(body === undefined ? {} : { 'content-type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
    if (!res.ok) {
      const err = await errorOf(res);
      if (res.status === 401) this.onUnauthorized(err);
      throw err;
    }
    return res;
  }

  async get<T>(path: string): Promise<T> {
    return (await (await this.#call('GET', path)).json()) as T;
  }

  /** The answer itself, for routes whose headers say more than the body (GET /api/logs). */
  async response(path: string): Promise<Response> {
    return this.#call('GET', path);
  }

  async text(path: string): Promise<string> {
    return (await this.#call('GET', path)).text();
  }

  async post<T>(path: string, body: unknown = {}): Promise<T> {
    return (await (await this.#call('POST', path, body)).json()) as T;
  }

  async delete<T>(path: string): Promise<T> {
    return (await (await this.#call('DELETE', path)).json()) as T;
  }
}

/** Who the token belongs to, in which project, and the other projects' pages. */
export interface Whoami {
  user: string;
  role: string;
  project: string;
  /** Other projects' pages (each served by its own MajorDomo; its own token to log in). */
  projects: Array<{ name: string; url: string }>;
}

/** Asks the API who the token belongs to: the login check. */
export async function whoami(token: string): Promise<Whoami> {
  const res = await fetch('/api/whoami', {
    headers: { authorization: `Bearer ${token}` },
    cache: 'no-store',
  });
  if (!res.ok) throw await errorOf(res);
  const who = (await res.json()) as Partial<Whoami> & { user: string; role: string };
  return { project: '', projects: [], ...who };
}
