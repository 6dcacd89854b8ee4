/* Sign-in: the link to the identity provider, carrying where to go afterwards. */
"use strict";

(function () {
  const H = window.Huxin;

  function nextPage() {
    const next = new URLSearchParams(location.search).get("next") || "/";
    // a path of this site only: the provider redirects back here
    return next.startsWith("/") && !next.startsWith("//") ? next : "/";
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
