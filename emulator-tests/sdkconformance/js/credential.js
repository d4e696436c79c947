// The smallest TokenCredential (@azure/core-auth) there is: it hands out one fixed bearer token, the
// one the Key Vault emulator accepts (keyvault.Credential's, or a token from keyvault NewToken with
// RBAC on). There is no Entra ID locally; against a real vault use @azure/identity instead.
'use strict';

class StaticTokenCredential {
    constructor(token) {
        if (!token) throw new Error('StaticTokenCredential needs a token');
        this.token = token;
    }

    async getToken() {
        return { token: this.token, expiresOnTimestamp: Date.now() + 60 * 60 * 1000, tokenType: 'Bearer' };
    }
}

module.exports = { StaticTokenCredential };
