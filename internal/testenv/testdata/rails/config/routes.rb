Rails.application.routes.draw do
  devise_for :users, controllers: { sessions: "users/sessions" }
  root "dashboard#show"
  get "dashboard", to: "dashboard#show"
  get "items", to: "items#index"
  get "recap", to: "recap#show"
  get "report", to: "report#show"
end
