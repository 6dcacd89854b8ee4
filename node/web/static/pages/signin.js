/* Sign-in: the link to the identity provider, carrying where to go afterwards. */
"use strict";

(function () {
  const H = window.Huxin;

  // a path of this site only: one "/" then no "/" or "\\" (browsers read "//host" and
  // "/\\host" as another host), RFC 3986 path and query characters only; the same
  // rule as node/http/_auth.py LOCAL_PATH
  const LOCAL_PATH = /^\/(?![\/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%\/?]*$/;

  function nextPage() {
    const next = new URLSearchParams(location.search).get("next") || "/";
    // the provider redirects back here
    return next.length <= 256 && LOCAL_PATH.test(next) ? next : "/";
  }

  H.page(
    async () => {
      const link = document.getElementById("provider");
      if (link) {
        const url = new URL(link.getAttribute("href"), location.href);
        url.searchParams.set("next", nextPage());
        link.setAttribute("href", url.pathname + url.search);
      }
      try {
        await H.api("GET", H.API.session);
        document.getElementById("already").hidden = false;
      } catch (e) {
        /* not signed in: the provider's link is the way in */
      }
    },
    { public: true }
  );
})();
