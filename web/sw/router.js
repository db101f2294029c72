// Routing: the first route whose `match` accepts a request handles it; requests no
// route wants go to the network untouched (the browser does what it would without us).

export class Router {
  #routes = [];

  /** `match({ url, request })` -> truthy; `handler.handle({ request, event, url })` -> Response. */
  register(match, handler, method = 'GET') {
    this.#routes.push({ match, handler, method });
    return this;
  }

  /** The response promise for `event`, or null when no route matches. */
  handle(event) {
    const { request } = event;
    const url = new URL(request.url);
    for (const route of this.#routes) {
      if (route.method !== request.method) continue;
      if (route.match({ url, request })) return route.handler.handle({ request, event, url });
    }
    return null;
  }
}
