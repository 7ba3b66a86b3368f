package asruntime

import (
	"errors"
	"flag"
	"log/slog"
	"time"
)

// publicClientFlags are the flags of the public service-account clients'
// grants.
type publicClientFlags struct {
	refreshTTL         time.Duration
	refreshMaxLifetime time.Duration
	familiesPerClient  int
}

func (f *publicClientFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&f.refreshTTL, "refresh-token-ttl", DefaultRefreshTokenTTL, "how long a refresh token stays valid unused; every refresh rotates it")
	fs.DurationVar(&f.refreshMaxLifetime, "refresh-token-max-lifetime", DefaultRefreshTokenMaxLifetime, "lifetime of a refresh-token family from its token exchange, whatever the rotations")
	fs.IntVar(&f.familiesPerClient, "refresh-token-families-per-client", DefaultRefreshFamiliesPerClient, "refresh-token families one client keeps; a new token exchange beyond it evicts the client's oldest family")
}

// publicClientSetup is where the server can reach Kubernetes for the
// public clients' grants. explicitKubeconfig: --kubeconfig was given;
// storeNamespace and storeServer: the in-cluster store's namespace and
// AuthorizationServer name (empty namespace: refresh tokens in memory).
type publicClientSetup struct {
	inCluster          bool
	kubeconfig         string
	explicitKubeconfig bool
	storeNamespace     string
	storeServer        string
}

// configure sets the token reviewer and the refresh token store of cfg.
// The grants are offered when the server has a Kubernetes client: always
// with the in-cluster registry, with --clients-dir only when --kubeconfig
// names one (a standalone server does not pick up $KUBECONFIG by surprise).
func (f *publicClientFlags) configure(cfg *Config, setup publicClientSetup, log *slog.Logger) error {
	if f.refreshTTL <= 0 || f.refreshMaxLifetime <= 0 || f.familiesPerClient <= 0 {
		return errors.New("--refresh-token-ttl, --refresh-token-max-lifetime and --refresh-token-families-per-client must be positive")
	}
	cfg.RefreshTokenTTL, cfg.RefreshTokenMaxLifetime, cfg.RefreshFamiliesPerClient = f.refreshTTL, f.refreshMaxLifetime, f.familiesPerClient
	if !setup.inCluster && !setup.explicitKubeconfig {
		log.Info("no Kubernetes client (--kubeconfig): the token exchange and refresh_token grants are not offered")
		return nil
	}
	kube, err := kubernetesClient(setup.kubeconfig)
	if err != nil {
		return err
	}
	cfg.TokenReviewer = NewKubeTokenReviewer(kube)
	if setup.storeNamespace == "" {
		log.Warn("no --revocation-namespace: refresh tokens are kept in memory, lost on restart and not shared with other replicas")
		return nil
	}
	cfg.RefreshTokens, err = NewKubeRefreshTokenStore(kube, setup.storeNamespace, setup.storeServer)
	return err
}
