// @medusajs/js-sdk's provider flow against a live Tillkey (tests/test_federation_medusa_sdk.py),
// in two steps because a browser signs in at the provider in between. Usage:
//   STEP=login    BASE=… KEY=<publishable key> node sdk-federated.mjs   -> {"location": …}
//   STEP=callback BASE=… KEY=… QUERY=<json of the callback query> node sdk-federated.mjs
//       -> the token, the customer created with it, the refreshed token and the customer's own record
import Medusa from "@medusajs/js-sdk";

const { BASE, KEY, STEP, QUERY } = process.env;
const sdk = new Medusa({ baseUrl: BASE, publishableKey: KEY, auth: { type: "jwt", jwtTokenStorageMethod: "memory" } });
const out = {};
if (STEP === "login") {
  out.login = await sdk.auth.login("customer", "corp", {});
} else {
  out.token = await sdk.auth.callback("customer", "corp", JSON.parse(QUERY));
  out.created = (await sdk.store.customer.create({ first_name: "Ada", last_name: "Lovelace" })).customer;
  out.refreshed = await sdk.auth.refresh();
  out.me = (await sdk.store.customer.retrieve()).customer;
}
process.stdout.write(JSON.stringify(out));
