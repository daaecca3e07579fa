package cli

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/osauth"
)

const openStackCategory = "OpenStack authentication (as the openstack CLI)"

// OpenStackFlags are the OpenStack authentication flags, each with its OS_* twin.
// Secrets belong in the environment or clouds.yaml/secure.yaml: a command
// line is visible to every user of the machine.
func OpenStackFlags() []ucli.Flag {
	s := func(name, env, usage string) ucli.Flag {
		return &ucli.StringFlag{Name: name, EnvVars: []string{env}, Usage: usage, Category: openStackCategory}
	}
	return []ucli.Flag{
		s("os-cloud", "OS_CLOUD", "cloud entry in clouds.yaml"),
		s("os-client-config-file", "OS_CLIENT_CONFIG_FILE", "clouds.yaml path (default ./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml)"),
		s("os-auth-url", "OS_AUTH_URL", "Keystone URL, e.g. https://keystone.example:5000/v3"),
		s("os-username", "OS_USERNAME", "user name"),
		s("os-user-id", "OS_USER_ID", "user ID"),
		s("os-password", "OS_PASSWORD", "password (set OS_PASSWORD, not the flag)"),
		s("os-user-domain-name", "OS_USER_DOMAIN_NAME", "user's domain name"),
		s("os-user-domain-id", "OS_USER_DOMAIN_ID", "user's domain ID"),
		s("os-project-name", "OS_PROJECT_NAME", "project name"),
		s("os-project-id", "OS_PROJECT_ID", "project ID"),
		s("os-project-domain-name", "OS_PROJECT_DOMAIN_NAME", "project's domain name"),
		s("os-project-domain-id", "OS_PROJECT_DOMAIN_ID", "project's domain ID"),
		s("os-application-credential-id", "OS_APPLICATION_CREDENTIAL_ID", "application credential ID"),
		s("os-application-credential-name", "OS_APPLICATION_CREDENTIAL_NAME", "application credential name (with --os-username)"),
		s("os-application-credential-secret", "OS_APPLICATION_CREDENTIAL_SECRET", "application credential secret (set the variable, not the flag)"),
		s("os-region-name", "OS_REGION_NAME", "region whose endpoints to use"),
		s("os-interface", "OS_INTERFACE", "endpoint interface: public, internal or admin"),
		s("os-cacert", "OS_CACERT", "PEM CA bundle for TLS to OpenStack"),
		&ucli.BoolFlag{Name: "os-insecure", EnvVars: []string{"OS_INSECURE"}, Usage: "skip TLS verification (test clouds only)", Category: openStackCategory},
	}
}

// OpenStackAuth reads the OpenStackFlags into osauth.Options.
func OpenStackAuth(cliContext *ucli.Context, stage string) osauth.Options {
	return osauth.Options{
		Cloud: cliContext.String("os-cloud"), CloudsFile: cliContext.String("os-client-config-file"),
		AuthURL: cliContext.String("os-auth-url"), Username: cliContext.String("os-username"), UserID: cliContext.String("os-user-id"),
		Password:       logging.Secret(cliContext.String("os-password")),
		UserDomainName: cliContext.String("os-user-domain-name"), UserDomainID: cliContext.String("os-user-domain-id"),
		ProjectName: cliContext.String("os-project-name"), ProjectID: cliContext.String("os-project-id"),
		ProjectDomainName: cliContext.String("os-project-domain-name"), ProjectDomainID: cliContext.String("os-project-domain-id"),
		AppCredID: cliContext.String("os-application-credential-id"), AppCredName: cliContext.String("os-application-credential-name"),
		AppCredSecret: logging.Secret(cliContext.String("os-application-credential-secret")),
		Region:        cliContext.String("os-region-name"), Interface: cliContext.String("os-interface"),
		CACert: cliContext.String("os-cacert"), Insecure: cliContext.Bool("os-insecure"),
		Stage: stage,
	}
}
